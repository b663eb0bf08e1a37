"""The convolutional causal VAE (`conv-tiny`): shapes, causality, streaming, the registry."""

import dataclasses

import pytest
import torch

from diffusable.models import autoencoders, conv_vae
from diffusable.models.checkpoint import load_autoencoder, save_weights_fp16
from diffusable.models.conv_vae import ConvCausalVAE, ConvVAEConfig
from perturb import perturbed_model


def perturbed(cfg, seed=1):
    """A model whose every layer matters (the zero-initialised ones too)."""
    return perturbed_model(lambda: ConvCausalVAE(cfg), seed)


@pytest.fixture(scope="module")
def vae():
    return perturbed(autoencoders.get_config("conv-tiny"))


def test_one_image_is_one_latent_frame_and_decodes_to_one_image(vae):
    image = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(image)[0]
        assert z.shape == (1, 4, 1, 4, 4)
        assert vae.decode(z).shape == (1, 3, 1, 32, 32)


def test_decoder_context_covers_the_receptive_field(vae):
    """Decoded group j depends on latent frames j - (context - 1) .. j and no earlier ones."""
    ctx = vae.cfg.decoder_context_latents
    t = ctx + 2  # latent frames 0 .. ctx + 1; frame 1 is changed
    z = torch.randn(1, 4, t, 4, 4)
    changed = z.clone()
    changed[:, :, 1] = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        a, b = vae.decode(z), vae.decode(changed)
    group = lambda v, j: v[:, :, 4 * j - 3 : 4 * j + 1]  # noqa: E731
    assert not torch.allclose(group(a, ctx), group(b, ctx))  # frame 1 is its oldest input
    assert torch.equal(group(a, ctx + 1), group(b, ctx + 1))  # frame 1 is out of its field


def test_streaming_state_is_passed_in_and_out(vae):
    """encode_step keeps nothing between calls: the same caches give the same latents."""
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        _, caches = vae.encode_step(video[:, :, :1])
        a, caches_a = vae.encode_step(video[:, :, 1:5], caches)
        b, caches_b = vae.encode_step(video[:, :, 1:5], caches)
    assert torch.equal(a, b)
    assert len(caches) == len(caches_a) > 0
    for c in caches_a:
        assert c.shape[0] == 1 and c.shape[2] == vae.cfg.kernel_t - 1  # (B, C, frames, h, w)


def test_shortcuts_off_still_trains_the_same_interface():
    cfg = autoencoders.get_config("conv-tiny", shortcuts=False)
    model = ConvCausalVAE(cfg)
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    recon, *_ = model(video)
    loss = (recon - video).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_config_is_one_sentence():
    with pytest.raises(ValueError, match="one count per width"):
        ConvVAEConfig(widths=(8, 16), encoder_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="no such setting"):
        autoencoders.get_config("conv-tiny", decoder_linear_kernel=3)


def test_config_round_trips_through_json():
    cfg = autoencoders.get_config("conv-small")
    again = autoencoders.config_from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.widths, tuple)


def test_checkpoint_round_trip_picks_the_architecture(tmp_path, vae):
    path = tmp_path / "ema.pt"
    save_weights_fp16(path, vae, "se", "run", 7)
    model, meta = load_autoencoder(path)
    assert isinstance(model, ConvCausalVAE) and meta["step"] == 7
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (model(video)[0] - vae(video)[0]).abs().max() < 0.02  # fp16 weights


def test_a_new_architecture_is_its_module_and_one_registry_line(tmp_path, monkeypatch):
    """Register a variant class under a new name: build, checkpoints and export dispatch on it."""

    @dataclasses.dataclass(frozen=True)
    class OtherConfig(ConvVAEConfig):
        architecture: str = "other-conv"

        @staticmethod
        def from_dict(d):
            d = dict(d)
            for k in ("widths", "encoder_blocks", "decoder_blocks"):
                d[k] = tuple(d[k])
            return OtherConfig(**d)

    class Other(ConvCausalVAE):
        pass

    cfg = OtherConfig(
        name="other",
        **{
            k: getattr(conv_vae.CONV_CONFIGS["conv-tiny"], k)
            for k in ("latent_channels", "widths", "encoder_blocks", "decoder_blocks", "resolution")
        },
    )
    arch = autoencoders.Architecture(
        "other-conv", OtherConfig, Other, {"other": cfg}, "scratch", lambda m: m.inference_form()
    )
    monkeypatch.setitem(autoencoders.ARCHITECTURES, "other-conv", arch)  # the one line
    model = autoencoders.build(autoencoders.get_config("other"))
    assert isinstance(model, Other)
    save_weights_fp16(tmp_path / "w.pt", model, "baseline", "r", 1)
    loaded, _ = load_autoencoder(tmp_path / "w.pt")
    assert isinstance(loaded, Other) and loaded.cfg == cfg
    assert isinstance(autoencoders.inference_form(loaded), Other)


def test_unknown_architecture_is_refused(tmp_path, vae):
    path = tmp_path / "w.pt"
    save_weights_fp16(path, vae, "se", "run", 1)
    state = torch.load(path)
    state["config"]["architecture"] = "nope"
    state["architecture"] = "nope"
    torch.save(state, path)
    with pytest.raises(ValueError, match="'nope' is not one of"):
        load_autoencoder(path)


def test_receptive_fields_from_the_config_hold_on_the_model(vae):
    """Changing pixels just outside the encoder's computed field leaves the latent cell as it
    was, and changing the nearest pixel inside it changes it (the bound is tight); the same for
    the decoder's field in latent cells. The tiling the export writes rests on these bounds."""
    cfg = vae.cfg
    f = cfg.spatial_factor
    left, right = cfg.encoder_receptive_pixels()
    size, q = 16 * f, 8  # latent cell 8 of a 16-cell row: its field lies inside the frame
    video = torch.rand(1, 3, 1, f, size) * 2 - 1
    with torch.no_grad():
        base = vae.encode(video)[0][..., q]
        for col, inside in [
            (f * q - left - 1, False),
            (f * q + right + 1, False),
            (f * q - left, True),
            (f * q + right, True),
        ]:
            changed = video.clone()
            changed[..., col] = -changed[..., col] + 0.5
            same = torch.equal(vae.encode(changed)[0][..., q], base)
            assert same is not inside, (col, inside)
    d_left, d_right = cfg.decoder_receptive_latents()
    z = torch.randn(1, cfg.latent_channels, 1, 1, 24)
    q = 12
    with torch.no_grad():
        base = vae.decode(z)[..., f * q : f * q + f]
        for cell in (q - d_left - 1, q + d_right + 1):
            changed = z.clone()
            changed[..., cell] += 1.0
            assert torch.equal(vae.decode(changed)[..., f * q : f * q + f], base)
        for cell in (q - d_left, q + d_right):
            changed = z.clone()
            changed[..., cell] += 1.0
            assert not torch.equal(vae.decode(changed)[..., f * q : f * q + f], base)


def test_spatial_tiling_overlap_covers_both_receptive_fields():
    cfg = autoencoders.get_config("conv-small")
    t = cfg.spatial_tiling()
    enc_left, enc_right = cfg.encoder_receptive_pixels()
    dec_left, dec_right = cfg.decoder_receptive_latents()
    m = t["margin_latents"]
    assert m * 8 >= enc_left and m * 8 >= enc_right - 7 and m >= max(dec_left, dec_right)
    assert t["overlap_latents"] == 2 * m + t["blend_latents"] < t["tile_latents"]
    assert t["overlap_pixels"] == 8 * t["overlap_latents"]
    assert t["tile_pixels"] == 8 * t["tile_latents"]
    assert cfg.trained_sizes == [[64, 64]]
    with pytest.raises(ValueError, match="tile_latents must be more than the overlap"):
        cfg.spatial_tiling(tile_latents=t["overlap_latents"])


def test_export_manifest_carries_trained_sizes_and_tiling(vae):
    from diffusable.export.ae_bundle import bundle_sizes

    sizes = bundle_sizes(vae.cfg)
    assert sizes["trained_sizes"] == [[32, 32]]
    assert sizes["tiling"] == vae.cfg.spatial_tiling()
