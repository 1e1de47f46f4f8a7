"""Making artifacts (imports torch/onnx/onnxruntime/tensorrt lazily): ONNX export, int8 Q/DQ
quantization, the ONNX a runtime needs from a PyTorch model, TensorRT engine build and cache,
and verification against PyTorch. Never imports :mod:`bisenet_ros.inference`, which runs them."""
