"""diffusable training: causal 3D autoencoder with scale-equivariance, data, metrics, export."""
