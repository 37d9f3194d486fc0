"""ONNX export with verification: ``export_onnx`` (a pipeline of named stages), torch.onnx called the
way poolport needs it, dynamic sizes, per-site reports. The ONNX files themselves are ``onnxfile``'s."""
