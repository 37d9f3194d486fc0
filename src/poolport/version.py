"""The version of poolport, in a module of its own so every layer (the command line too) can read it
without importing the package root."""

__version__ = "0.1.0"
