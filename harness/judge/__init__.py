"""Pairwise LLM judging of open-ended completions: pairing runs, the judge prompts, the request engine,
win-rate statistics."""
