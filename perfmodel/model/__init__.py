"""The model side: config.json -> ModelSpec (where configs come from, each family's mapping, the
records and their parameter counts). Knows nothing of GPUs, precisions or workloads."""
