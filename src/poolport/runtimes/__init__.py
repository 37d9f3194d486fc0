"""The inference runtimes poolport runs ONNX models in: one module per runtime (``onnxruntime_rt``,
``openvino_rt``, ``ncnn_rt``, ``mnn_rt``, ``litert_rt``), each with a ``RUNTIME`` object (``base.Runtime``)
that holds all poolport knows about it; ``registry`` lists them and is what the rest of poolport asks;
``isolated`` and ``workers/`` run a runtime in a process of its own."""
