"""Model backends behind one narrow, batched protocol (see :mod:`harness.backends.base`)."""
