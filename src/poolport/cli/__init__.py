"""The ``poolport`` command line: one file per command."""
