"""The runtimes poolport knows how to legalize for (``poolport legalize --target``). A separate, import-
light module so the command line can list them without importing onnx.

``auto`` probes the installed runtimes (``poolport probe``) and rewrites what they get wrong; ``tflite``
is another name for ``litert``."""

TARGETS = ("all", "auto", "onnxruntime", "openvino", "litert", "tflite", "ncnn", "mnn")
ALIASES = {"tflite": "litert"}
