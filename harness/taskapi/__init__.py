"""What a benchmark is to the engine: the task spec, the registry, data loading and language codes."""
