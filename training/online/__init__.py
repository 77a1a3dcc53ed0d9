"""Online iterative DPO: sample from the policy, score, pair best/worst, train, merge, measure; three rounds."""
