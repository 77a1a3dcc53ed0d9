"""Foundations every stage shares: user-facing errors, paths, content hashes, typed records, the retry helper."""
