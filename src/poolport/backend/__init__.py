"""Backends turn a plan from ``poolport.plan`` into operations:

* ``execute``       -- the one walk over an adaptive plan and the one over the explicit form (Pad + pool +
  divisor correction), shared by the backends below;
* ``torch_ops``     -- torch calls (which export to portable ONNX operators);
* ``onnx_ops``      -- those steps as ONNX operators, for both ways of writing ONNX nodes below;
* ``onnx_symbolic`` -- ONNX nodes inside torch's TorchScript exporter (custom symbolics);
* ``onnx_nodes``    -- ONNX nodes written directly (the legalizer's explicit and tap forms).
"""
