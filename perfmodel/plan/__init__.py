"""Sweeps, SLO search and Pareto fronts over deployments (GPU, count, parallelism, precision,
batch or concurrency), evaluated by the static-batch prediction or the serving simulation."""
