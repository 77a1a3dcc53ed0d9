"""What every training stage shares: typed records, validated YAML configs, and the atomic
output directory with its manifest (lineage: parents, data hashes, config, versions)."""
