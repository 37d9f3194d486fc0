"""The runtimes poolport knows how to legalize for (``poolport legalize --target``). A separate, import-
light module so the command line can list them without importing onnx."""

TARGETS = ("all", "onnxruntime", "openvino", "tflite", "ncnn", "mnn")
