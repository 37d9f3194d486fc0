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


def is_interrupt(e: BaseException) -> bool:
    """Whether ``e`` is a KeyboardInterrupt (Ctrl-C) or has one anywhere in its chain of causes and
    contexts: a library that catches the interrupt and raises its own error (torch's dynamo exporter
    does, mid-import) must not turn Ctrl-C into a failure of the model."""
    seen, todo = set(), [e]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__]
    return False


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says the process ran out of memory: a MemoryError, or torch's allocator failing
    ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory")."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
