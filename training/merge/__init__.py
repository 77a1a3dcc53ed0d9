"""Model merging: the config schema, merge methods as pure functions, exact streaming selection,
streaming safetensors I/O, and the merge itself."""
