"""The argument parsers the commands share: sizes (``128x128``), runtime lists (``onnxruntime,openvino``,
checked against the runtime registry), tolerances (``--rtol``) and input files. Each raises a PoolportError
(or, inside argparse, an ArgumentTypeError) that names the option and what it accepts; the command line
prints it as one line and exits 2."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import PoolportError


def parse_size(text: str, what: str) -> tuple[int, ...]:
    """``128`` or ``128x128`` (or ``1x3x256x256``) into a tuple of ints, each >= 1; ``what`` names the
    argument in the error."""
    try:
        sizes = tuple(int(p) for p in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise PoolportError(f"{what} {text!r} is not a size like 128 or 128x128.") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise PoolportError(f"{what} {text!r}: every entry must be >= 1.")
    return sizes


def parse_runtimes(text: str | None) -> tuple[str, ...] | None:
    """``onnxruntime,openvino`` -> a tuple of runtime names (None for no text: every runtime poolport
    knows). Raises PoolportError for a name the runtime registry does not know."""
    if not text:
        return None
    from ..runtimes.registry import select

    return select(r.strip() for r in text.split(",") if r.strip())


def add_runtimes_option(parser, help: str | None = None) -> None:
    """Add ``--runtimes LIST`` to ``parser`` (read it with ``parse_runtimes``); the default help lists the
    registry's runtimes."""
    from ..runtimes.registry import NAMES

    parser.add_argument("--runtimes", metavar="LIST", help=help or f"comma-separated, from {','.join(NAMES)} "
                        "(default: all)")


def parse_rtol(text: str) -> float:
    """``--rtol R``: a finite number >= 0 (a negative or NaN tolerance would fail every check or pass
    every one). Raises argparse.ArgumentTypeError, which argparse reports as a usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number.") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (a tolerance), got {text}.")
    return value


def add_rtol_option(parser, help: str) -> None:
    """Add ``--rtol R`` (None when not given), checked by ``parse_rtol``: every command that takes a
    tolerance takes it the same way."""
    parser.add_argument("--rtol", type=parse_rtol, default=None, metavar="R", help=help)


def input_file(text: str, what: str = "the model") -> Path:
    """``text`` as the path of an existing file; a PoolportError that says whether it is missing or a
    folder (``what`` names the argument)."""
    path = Path(text)
    if path.is_dir():
        raise PoolportError(f"{path} is a folder, not a file: give {what} file itself.")
    if not path.is_file():
        raise PoolportError(f"{path} does not exist.")
    return path
