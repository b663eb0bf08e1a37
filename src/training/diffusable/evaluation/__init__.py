"""Metrics and judges shared by the trainers and the studies: PSNR/SSIM, Fréchet distances and
their feature networks, the class-score classifier, latent spectra, degradations, contact sheets."""
