"""Export to ONNX and TensorRT, with verification against PyTorch (imports torch/onnx lazily)."""
