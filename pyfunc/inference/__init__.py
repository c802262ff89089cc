"""The embedding core (batching, crops) and what uses it: the Python API, the embed tool, ONNX."""
