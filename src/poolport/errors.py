"""The one exception type poolport raises for bad input or an impossible request."""


class PoolportError(ValueError):
    """Raised for invalid sizes, unsupported dtypes, unportable requests and failed verifications.

    Every message names the layer or function, the sizes involved and what to do about it.
    Subclasses ``ValueError`` so that code catching torch's own argument errors keeps working.
    """
