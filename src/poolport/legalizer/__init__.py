"""``poolport.legalize``: rewrite ONNX pooling nodes a target runtime computes wrongly into explicit,
equivalent forms, and verify the result against the original."""

from .legalize import Change, legalize

__all__ = ["Change", "legalize"]
