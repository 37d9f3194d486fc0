"""Backends turn a plan from ``poolport.plan`` into operations: ``torch_ops`` into torch calls (which
export to portable ONNX operators), ``onnx_nodes`` into ONNX nodes directly (used by the legalizer)."""
