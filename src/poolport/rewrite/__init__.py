"""Rewrite passes as rules: each rule names a pattern, builds its replacement and says what it did.
Callers verify the rewritten model numerically (``export_onnx``, ``legalize``).

* ``fx_adaptive`` -- aten adaptive pooling nodes in FX graphs (``torch.export`` programs).
"""
