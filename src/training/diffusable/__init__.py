"""diffusable training: causal 3D autoencoder with scale-equivariance, data, metrics, export."""

import os

# torch parallelises its own kernels with OpenMP; OpenBLAS threads underneath only oversubscribe
# the cores. Measured on 2 busy cores: the denoiser's attention bmm took 5.3 s per step with
# OpenBLAS threads and vanished from the profile without them. Must be set before torch loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
