"""Scoring beyond a task's own scorer: summary statistics with seeded CIs, chrF++ through sacrebleu, xCOMET
in its isolated environment."""
