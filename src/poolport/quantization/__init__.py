"""int8 quantization of poolport's plans: what each quantizer needs so that a plan's Slice, pooling and
Concat nodes keep one scale where one is right, and run in int8 where the runtime can.

One module per path, each importing its quantizer only inside its functions:

* ``onnxruntime_qdq``: ONNX Runtime static quantization (QDQ). ``share_pooling_scales`` rewrites a
  quantized model so that every Concat of pooled runs takes its inputs at its own output scale (no
  requantization inside a plan); ``s8_plans_to_u8`` writes the s8 pairs around plans in u8 as ONNX
  Runtime's CPU provider runs them; ``quantize_static`` is ``onnxruntime.quantization.quantize_static``
  followed by both.
* ``openvino_nncf``: OpenVINO with NNCF. ``quantize`` is ``nncf.quantize`` with the average-pooling plans
  in its ignored scope, so that they compute in float as OpenVINO's own adaptive op does.
* ``pt2e``: PyTorch 2 Export quantization (ExecuTorch's ``XNNPACKQuantizer``, litert-torch's
  ``PT2EQuantizer``). ``PoolingQuantizer`` wraps a quantizer and annotates the plans' ``avg_pool2d`` nodes,
  which those quantizers leave in float, with ``SharedQuantizationSpec``.

The recipes and the measurements per path: docs/quantization.md.
"""
