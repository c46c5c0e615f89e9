"""Renderers of a prediction: rich tables for the terminal and the documented --json schema."""
