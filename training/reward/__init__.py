"""Reward models: training one with trl's RewardTrainer on preference pairs, and scoring
completions with one (the convention trl, OpenRLHF and verl share)."""
