"""Evaluation data: sources, the grain pipeline, the catalog of named sets."""
