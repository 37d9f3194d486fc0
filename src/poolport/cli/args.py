"""The argument parsers the commands share: sizes (``128x128``) and runtime lists
(``onnxruntime,openvino``, checked against the runtime registry). Each raises a PoolportError that names
the option and what it accepts; the command line prints it as one line and exits 2."""

from __future__ import annotations

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
