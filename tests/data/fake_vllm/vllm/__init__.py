"""A stand-in for vLLM in the CPU tests of calibrate-engine: the same entry points (server with
/health, benchmark main writing a result JSON), no GPU, no model."""
__version__ = "0.0.0+fake"
