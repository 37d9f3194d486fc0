"""The one exception type poolport raises for bad input or an impossible request."""


class PoolportError(ValueError):
    """Raised for invalid sizes, unsupported dtypes, unportable requests and failed verifications.

    Every message names the layer or function, the sizes involved and what to do about it.
    Subclasses ``ValueError`` so that code catching torch's own argument errors keeps working.
    """


class VerificationError(PoolportError):
    """The conversion ran, but its result differs from PyTorch beyond the tolerance (or could not be
    checked where a check was required): nothing was written. ``poolport`` exits with 1 for it."""


def one_line(text: str, limit: int = 400) -> str:
    """A tool's multi-line message (onnx.checker splits its findings over lines) as one sentence for a
    PoolportError: whitespace collapsed, at most ``limit`` characters, ending in "." (or "..." where
    it was cut)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        return flat[: limit - 3].rstrip(" .:") + "..."
    return flat.rstrip(" .:") + "."
