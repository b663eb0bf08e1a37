"""diffusable training package: causal 3D autoencoder with scale-equivariance, data, metrics, export."""
