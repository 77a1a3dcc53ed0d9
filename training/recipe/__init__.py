"""The recipe: a graph of training stages in one file, run content-addressed and resumable."""
