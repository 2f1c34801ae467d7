"""Helpers of ``ops/bench``: databases, data, and one module per group of scenarios."""
