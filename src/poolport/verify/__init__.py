"""Verification: what a model pools, recorded against torch's native op (``recorder``, ``in_pytorch``),
and the exported model run in ONNX Runtime and other runtimes (``poolport.runtimes``) against PyTorch
(``compare``, ``check``)."""
