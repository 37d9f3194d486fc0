"""ONNX export with verification: graph inspection, ONNX Runtime checks, per-site reports."""
