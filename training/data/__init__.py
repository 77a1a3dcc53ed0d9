"""Training data in: prompt sets (files and hub datasets) and the check that keeps
evaluation prompts out of them."""
