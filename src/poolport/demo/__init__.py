"""Embedded default models for ``poolport demo`` (random weights, no download)."""
