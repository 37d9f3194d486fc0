"""Oracles for tests, as ``torch.testing``: plain numpy references written from the definitions."""
