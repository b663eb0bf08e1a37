"""The trainers: one skeleton (trainer.py), the autoencoder and denoiser trainers on it, their
losses, schedules, DDP set-up and latent caches, and tools for finished runs."""
