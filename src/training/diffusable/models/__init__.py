"""The models: autoencoder architectures and their registry, the denoiser, the flow that
samples it, the scale operators SE uses, and checkpoints that carry each model's config."""
