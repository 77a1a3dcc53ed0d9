"""Offline DPO (trl DPOTrainer): preference pairs and a policy checkpoint in, a checkpoint out."""
