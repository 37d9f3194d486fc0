"""``poolport.legalize``: rewrite ONNX pooling nodes a target runtime computes wrongly into explicit,
equivalent forms, and verify the result against the original."""

from .legalize import Kept, LegalizeResult, PoolRewrite, legalize

__all__ = ["Kept", "LegalizeResult", "PoolRewrite", "legalize"]
