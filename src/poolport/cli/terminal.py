"""Keeping the terminal readable: torch.onnx, pnnx and others print progress, warnings and whole IR
graphs (from C++, straight to the file descriptors). The command line silences them around its work;
the library never touches other libraries' loggers or the process's file descriptors."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def quiet():
    """torch.onnx prints progress, warnings and (from C++, straight to the file descriptors) whole IR
    graphs of its own; keep them off the terminal. Yields a buffer with what Python printed."""
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    saved = []
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
                    warnings.simplefilter("ignore")
                    yield buf
            finally:
                for fd, copy in saved:
                    os.dup2(copy, fd)
                    os.close(copy)
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
