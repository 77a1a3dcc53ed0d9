"""Model backends behind one narrow, batched protocol: the transformers backend with shared-prefix scoring,
the embedded model, the backend loader, the lm-eval reference adapter."""
