"""Metrics: jittable accumulators and sequence/robustness metrics."""
