"""The contract every registered autoencoder keeps (autoencoders.py), on each architecture's tiny
config: the frame rule, causality, no mixing across the batch, chunked = one pass."""

import pytest
import torch

from diffusable.models import autoencoders
from perturb import perturbed_model

CONFIGS = ["tiny", "conv-tiny"]  # pca-residual-causal, conv-causal


def perturbed(name, seed=1):
    """A model whose every layer matters (the zero-initialised ones too)."""
    return perturbed_model(lambda: autoencoders.build(autoencoders.get_config(name)), seed)


@pytest.fixture(scope="module", params=CONFIGS)
def vae(request):
    return perturbed(request.param)


def test_every_architecture_is_tested():
    names = {autoencoders.get_config(n).architecture for n in CONFIGS}
    assert names == set(autoencoders.ARCHITECTURES)


@pytest.mark.parametrize("frames", [1, 5, 17, 33])
def test_shapes_follow_the_frame_rule(vae, frames):
    video = torch.rand(2, 3, frames, 32, 40) * 2 - 1
    with torch.no_grad():
        recon, z, mean, logvar = vae(video)
    k = (frames - 1) // 4
    assert z.shape == mean.shape == logvar.shape == (2, 4, 1 + k, 4, 5)
    assert recon.shape == video.shape
    assert vae.cfg.latent_shape(frames, 32, 40) == (4, 1 + k, 4, 5)


def test_bad_frame_counts_are_refused(vae):
    with pytest.raises(ValueError, match=r"1 \+ 4k"):
        vae.encode(torch.zeros(1, 3, 6, 32, 32))


@pytest.mark.parametrize("j", [0, 3, 4, 9, 16])
def test_encoder_is_causal(vae, j):
    video = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    changed = video.clone()
    changed[:, :, j] = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = vae.encode(video)[0], vae.encode(changed)[0]
    first_affected = (j + 3) // 4  # latent frame i covers video frames 4i-3..4i
    assert torch.equal(a[:, :, :first_affected], b[:, :, :first_affected])
    assert not torch.allclose(a[:, :, first_affected], b[:, :, first_affected])


@pytest.mark.parametrize("j", [0, 1, 3])
def test_decoder_is_causal(vae, j):
    z = torch.randn(1, 4, 5, 4, 4)
    changed = z.clone()
    changed[:, :, j] = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        a, b = vae.decode(z), vae.decode(changed)
    first_affected = max(0, 4 * j - 3)  # latent frame j decodes to video frames 4j-3..4j
    assert torch.equal(a[:, :, :first_affected], b[:, :, :first_affected])
    assert not torch.allclose(a[:, :, first_affected], b[:, :, first_affected])


def test_no_mixing_across_the_batch(vae):
    video = torch.rand(3, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        together = vae.encode(video)[0]
        alone = vae.encode(video[1:2])[0]
    assert torch.allclose(together[1:2], alone, atol=1e-6)


@pytest.mark.parametrize("chunk_latents", [1, 2, 3])
def test_chunked_encode_equals_one_pass(vae, chunk_latents):
    vae.latent_shift.fill_(0.1)
    vae.latent_scale.fill_(1.7)
    video = torch.rand(2, 3, 33, 32, 32) * 2 - 1
    with torch.no_grad():
        whole = vae.encode_scaled(video)
        chunked = vae.encode_chunked(video, chunk_latents=chunk_latents)
    vae.latent_shift.fill_(0.0)
    vae.latent_scale.fill_(1.0)
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max().item() <= 1e-4
