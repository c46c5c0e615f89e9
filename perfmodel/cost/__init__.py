"""Where model meets hardware: precision, the ops of a forward, their roofline limit, the
estimate from measured kernel tables, engine presets, and one static-batch prediction."""
