"""Regression gating of a candidate against a baseline (reads the results store only): the fixed gate, the
sequential gate, its policy, paired statistics, and paired significance tests between runs."""
