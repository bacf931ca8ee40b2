"""Export of the head for the robot: ONNX (fp32, fp16), a TensorRT engine, and the metadata file."""
