"""Standalone scripts that run one converted model in a runtime poolport cannot import safely in its own
process: MNN (its converter and kernels can crash the process) and LiteRT via onnx2tf (pinned to old
onnx/onnxruntime/numpy, so it lives in its own Python environment). Each script imports only numpy, the
runtime and the standard library; ``poolport.runtimes.isolated`` starts it and reads its answer."""
