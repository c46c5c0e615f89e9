"""The hardware side: GPU profiles (datasheet or measured) as data with provenance, read from
YAML into GpuSpec. Knows nothing of models."""
