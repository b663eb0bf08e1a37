"""From checkpoints to bundles: ONNX graphs of the autoencoder and denoiser, shared weights,
reading weights back, and the parity fixtures of the node tests."""
