"""Train the causal 3D autoencoder: pre-train from the linear code, or fine-tune with or
without the scale-equivariance (SE) term.

    PYTHONPATH=src/training python3 -m diffusable.training.train_ae \
        --config small --variant baseline \
        --out runs/ae-small-pretrain                                   # starts from the PCA
    PYTHONPATH=src/training python3 -m diffusable.training.train_ae --config small --variant se \
        --init runs/ae-small-pretrain/checkpoints/last.pt --out runs/ae-small-se
    torchrun --nproc_per_node 8 -m diffusable.training.train_ae \
        --config base --variant se --out runs/se

Variants differ only in the SE term: `baseline` (weight 0), `se` (space and time modes),
`se-spatial` (space modes only). Every step draws the same batch, flips, posterior noise and one
uniform number that picks the SE mode among the variant's modes, so runs of one --seed differ only
by that term (tested). Re-running with the same --out resumes from the last checkpoint and
continues the same loss trajectory: all randomness of step s comes from a generator seeded by
(seed, s, rank). `diffusable.experiments.ae_protocol` runs the paper's whole protocol.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from . import distributed
from ..models.autoencoders import build, count_parameters, fresh_init, get_config
from ..models.checkpoint import load_autoencoder, save_weights_fp16
from ..data.clips import ClipDataset
from ..data.datasets import resolve_dataset
from ..events import portable_path
from .loop_utils import (
    add_run_flags,
    autocast_for,
    config_from_flags,
    ema_update,
    lr_at,
    step_generator,
)
from .losses import (
    PatchDiscriminator,
    adaptive_weight,
    generator_adv_loss,
    gradient_loss,
    hinge_d_loss,
    kl_loss,
    reconstruction_loss,
    step_profile_loss,
)
from ..models.linear_code import (
    fit_linear_code_on,
    init_from_linear_code,
    linear_code_config,
    linear_code_model,
)
from ..models.scale_equivariance import SE_FILTERS, VARIANT_MODES, draw_mode, se_pair
from ..evaluation.spectrum import analyse
from .trainer import LoopConfig, StepBudget, StepLog, start_run


@dataclass
class TrainConfig(LoopConfig):
    weight_decay: float = 0.01
    log_every: int = 20
    eval_every: int = 200
    # The PCA-initialised linear maps learn slower than the zero-initialised residual nets: they
    # start at their optimum for a linear code and only need to follow the residuals.
    linear_lr_scale: float = 0.1
    kl_weight: float = 1e-5
    se_weight: float = 0.25  # forced to 0 by --variant baseline
    se_filter: str = "area"  # spatial downsampling of the SE pair: area | bilinear
    hflip: bool = True  # mirror half of the clips (drawn per step, identical across variants)
    # Train on random crops (0 = whole clips): a convolutional AE is the same function at any
    # size, and a 48x48x9 crop costs a third of a 64x64x17 clip, so a step sees more clips.
    crop_size: int = 0
    crop_frames: int = 0
    # Weight of the neighbour-step term (losses.gradient_loss) beside L1 + L2; 0 = off.
    grad_weight: float = 0.0
    # Weight of the step-profile term (losses.step_profile_loss): the target's mean |step| at
    # each phase of the 8-pixel period, against the decoder's periodic pattern; 0 = off.
    profile_weight: float = 0.0
    # Gaussian noise of this standard deviation, in the scaled latent units a denoiser works in,
    # added to the latent the reconstruction is decoded from (not to the SE pair's): a decoder
    # that has seen perturbed latents renders a denoiser's imperfect ones with fewer artefacts
    # at the latent cells' edges. 0 = off (and nothing more is drawn).
    latent_noise: float = 0.0
    # False: only the decoder learns. The encoder, its latent scale and so the latents stay
    # exactly the init's, and every denoiser trained on them stays valid (a decoder fine-tune).
    train_encoder: bool = True
    # A per-frame patch discriminator (losses.PatchDiscriminator): it learns from step 0, and its
    # term joins the decoder's loss at disc_start (-1 = no discriminator), so that the first
    # gradient it sends is a judgement, not a random network's. The term's weight is disc_weight
    # times the ratio of the reconstruction loss's gradient norm to its own at the decoder's
    # last layer (VQGAN's balancing): the same disc_weight means the same pull on any decoder.
    disc_start: int = -1
    disc_weight: float = 0.1
    ckpt_every: int = 200
    val_clips: int = 80
    # procedural dataset size (used when --data procedural)
    train_per_class: int = 48
    val_per_class: int = 8


TRAIN_PRESETS: Dict[str, TrainConfig] = {
    "tiny": TrainConfig(
        steps=20,
        batch_size=2,
        lr=1e-3,
        warmup=2,
        log_every=1,
        eval_every=10,
        ckpt_every=10,
        val_clips=4,
        train_per_class=3,
        val_per_class=1,
    ),
    # Pre-training from the linear code on 2 CPU cores (about 3 steps/s when they are free).
    "small": TrainConfig(steps=4500, lr=1.5e-3, eval_every=500, ckpt_every=250),
    # Fine-tunes of a pre-trained AE (the paper fine-tunes for up to 20K steps).
    "small-finetune": TrainConfig(steps=600, lr=3e-4, warmup=20, eval_every=150, ckpt_every=150),
    # One H200 (gpu_protocol: the whole protocol in about 9 minutes of wall time).
    "base": TrainConfig(
        steps=6000,
        batch_size=16,
        lr=1e-3,
        warmup=200,
        log_every=100,
        eval_every=1500,
        ckpt_every=1500,
        val_clips=128,
        train_per_class=100,
        val_per_class=8,
    ),
}
# The conv VAE from scratch (conv_vae.py): no linear code to start from, so a real warm-up.
TRAIN_PRESETS["conv-tiny"] = TRAIN_PRESETS["tiny"]
TRAIN_PRESETS["conv-small"] = TrainConfig(
    steps=4000,
    batch_size=12,
    lr=1e-3,
    warmup=100,
    eval_every=500,
    ckpt_every=100,
    linear_lr_scale=1.0,
    crop_size=48,
    crop_frames=9,
)
TRAIN_PRESETS["conv-narrow"] = TRAIN_PRESETS["conv-small"]
TRAIN_PRESETS["conv-small-64"] = TRAIN_PRESETS["conv-small"]
TRAIN_PRESETS["conv-base"] = replace(TRAIN_PRESETS["base"], linear_lr_scale=1.0)
# Fine-tunes keep their pre-train's data, batch and logging, with a short, gentle schedule.
TRAIN_PRESETS["tiny-finetune"] = replace(
    TRAIN_PRESETS["tiny"], steps=6, warmup=1, eval_every=3, ckpt_every=3
)
TRAIN_PRESETS["conv-tiny-finetune"] = TRAIN_PRESETS["tiny-finetune"]
TRAIN_PRESETS["conv-small-finetune"] = replace(
    TRAIN_PRESETS["conv-small"],
    steps=600,
    batch_size=8,
    lr=5e-4,
    warmup=20,
    eval_every=150,
    ckpt_every=50,
    crop_size=0,
    crop_frames=0,
)
TRAIN_PRESETS["conv-base-finetune"] = replace(
    TRAIN_PRESETS["conv-base"], steps=1500, lr=3e-4, warmup=50, eval_every=500, ckpt_every=500
)
TRAIN_PRESETS["base-finetune"] = replace(
    TRAIN_PRESETS["base"], steps=1500, lr=3e-4, warmup=50, eval_every=500, ckpt_every=500
)


@dataclass
class StepDraws:
    indices: List[int]  # training clips of the batch
    noise: torch.Tensor  # (B, C, t, h, w) posterior noise
    se_mode: Optional[str]  # the SE mode (None for the baseline)
    flips: torch.Tensor  # (B,) bool: mirror the clip
    crop: Optional[Tuple[int, int, int]]  # (first frame, top, left) of the step's crop
    latent_noise: Optional[torch.Tensor] = None  # (B, C, t, h, w) unit noise, with latent_noise


def step_draws(
    cfg: TrainConfig,
    step: int,
    rank: int,
    n_clips: int,
    latent_shape,
    variant: str,
    clip_room: Tuple[int, int, int] = (0, 0, 0),
    world: int = 1,
) -> StepDraws:
    """All randomness of one step, from the step's own generator, in a fixed order: every
    variant draws the same batch, noise, uniform for the SE mode and flips (tested).

    The clips come from one permutation shared by all ranks (its generator ignores the rank),
    each rank taking its own slice, so the ranks of a DDP run see disjoint clips of one global
    batch; the rest is drawn per rank."""
    perm = torch.randperm(n_clips, generator=step_generator(cfg.seed, step, -1))
    need = world * cfg.batch_size
    perm = perm.repeat((need + n_clips - 1) // n_clips)  # a dataset smaller than the batch
    idx = perm[rank * cfg.batch_size : (rank + 1) * cfg.batch_size].tolist()
    g = step_generator(cfg.seed, step, rank)
    noise = torch.randn(latent_shape, generator=g)
    mode = draw_mode(g, latent_shape, VARIANT_MODES[variant])
    flips = torch.rand(cfg.batch_size, generator=g) < 0.5
    crop = None
    if cfg.crop_size or cfg.crop_frames:
        u = torch.rand(3, generator=g).tolist()
        crop = tuple(int(v * (room + 1)) for v, room in zip(u, clip_room))
    # Drawn last, and only when used: every earlier draw stays what it was without it.
    extra = torch.randn(latent_shape, generator=g) if cfg.latent_noise > 0 else None
    return StepDraws(idx, noise, mode, flips, crop, extra)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Train the causal 3D autoencoder.")
    ap.add_argument("--config", default="small", help="model variant: tiny | small | base")
    ap.add_argument("--variant", choices=sorted(VARIANT_MODES), required=True)
    ap.add_argument(
        "--init",
        help="'linear' (the PCA of the training split), 'scratch' (random), or an AE checkpoint "
        "to fine-tune (default: the architecture's own fresh start, see autoencoders.py)",
    )
    ap.add_argument(
        "--preset", help="training preset (default: the config's, or <config>-finetune)"
    )
    ap.add_argument(
        "--decoder-linear-kernel",
        type=int,
        help="spatial kernel of the decoder's linear map over latent tokens (default: the "
        "config's; a fine-tune may widen its --init's, see CausalVAE.load_from)",
    )
    ap.add_argument(
        "--refine-width",
        type=int,
        help="width of the decoder's refinement stage at twice the latent resolution (0 = "
        "none; a fine-tune may add one to its --init, zero-initialised)",
    )
    add_run_flags(ap, TrainConfig)
    args = ap.parse_args(argv)
    overrides = {}
    if args.decoder_linear_kernel is not None:
        overrides["decoder_linear_kernel"] = args.decoder_linear_kernel
    if args.refine_width is not None:
        overrides["refine_width"] = args.refine_width
    try:
        model_cfg = get_config(args.config, **overrides)
    except ValueError as err:
        ap.error(str(err))
    if args.init is None:
        args.init = fresh_init(model_cfg)
    if args.init in ("linear", "scratch") and args.init != fresh_init(model_cfg):
        ap.error(f"--init {args.init}: config {args.config} starts from {fresh_init(model_cfg)!r}")
    finetune = args.init not in ("linear", "scratch")
    preset = args.preset or (f"{args.config}-finetune" if finetune else args.config)
    if args.preset and preset not in TRAIN_PRESETS:
        ap.error(f"unknown preset {preset!r}; choose from {sorted(TRAIN_PRESETS)}")
    train_cfg = config_from_flags(
        args, TRAIN_PRESETS.get(preset, TRAIN_PRESETS.get(args.config, TrainConfig()))
    )
    if not VARIANT_MODES[args.variant]:
        train_cfg.se_weight = 0.0
    if train_cfg.se_filter not in SE_FILTERS:
        ap.error(f"--se-filter must be one of {sorted(SE_FILTERS)}, got {train_cfg.se_filter!r}")
    return args, model_cfg, train_cfg


class AETrainingForward(nn.Module):
    """The whole differentiable step in one forward, so DDP sees every parameter use."""

    def __init__(self, vae: nn.Module, se_filter: str = "area"):
        super().__init__()
        self.vae = vae
        self.se_filter = se_filter

    def forward(self, video, noise, se_mode: Optional[str], latent_noise=None):
        """latent_noise: (B, C, t, h, w) in scaled latent units, added to the decoded latent."""
        mean, logvar = self.vae.encode(video)
        z = mean + torch.exp(0.5 * logvar) * noise
        z_dec = z
        if latent_noise is not None:  # scaled units -> the decoder's raw units
            z_dec = z + latent_noise / self.vae.latent_scale.view(1, -1, 1, 1, 1)
        recon = self.vae.decode(z_dec)
        out = {"recon": recon, "mean": mean, "logvar": logvar}
        if se_mode is not None:
            z_small, video_small = se_pair(z, video, se_mode, self.se_filter)
            out["se_recon"] = self.vae.decode(z_small)
            out["se_target"] = video_small
        return out


def calibration_clips(train_ds: ClipDataset) -> torch.Tensor:
    """About 64 training clips spread over the split: what the latent scale is fitted on."""
    return train_ds.batch(list(range(0, len(train_ds), max(1, len(train_ds) // 64))))[0]


@torch.no_grad()
def calibrate_latent_scale(model: nn.Module, clips: torch.Tensor, batch_size: int = 8) -> None:
    """Per-channel shift/scale so that scaled latents have zero mean and unit variance."""
    device = next(model.parameters()).device
    means = [
        model.encode(clips[i : i + batch_size].to(device))[0]
        for i in range(0, len(clips), batch_size)
    ]
    lat = torch.cat(means).transpose(0, 1).flatten(1)  # (C, N*t*h*w)
    model.latent_shift.copy_(lat.mean(dim=1))
    model.latent_scale.copy_(1.0 / lat.std(dim=1).clamp_min(1e-6))


def main(argv=None) -> int:
    # ---------------------------------------------------------------- setup
    args, model_cfg, cfg = parse_args(argv)
    run = start_run(args)
    device, is_main, dist_info, events = run.device, run.is_main, run.dist, run.events
    out, run_id, ckpt_path = run.out, run.run_id, run.ckpt_path
    try:
        budget = StepBudget.from_args(args)
    except ValueError as err:
        print(f"train_ae: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.seed)

    # ---------------------------------------------------------------- data
    try:
        data_root = resolve_dataset(args.data, model_cfg, cfg.train_per_class, cfg.val_per_class)
        train_ds, val_ds = ClipDataset(data_root, "train"), ClipDataset(data_root, "val")
    except (FileNotFoundError, ValueError) as err:
        print(f"train_ae: {err}", file=sys.stderr)
        return 2
    have = (train_ds.frames, train_ds.height, train_ds.width)
    want = (model_cfg.frames, model_cfg.resolution, model_cfg.resolution)
    if have != want:
        print(
            f"train_ae: dataset clips are {'x'.join(map(str, have))} (frames x H x W) but config "
            f"{model_cfg.name} trains on {'x'.join(map(str, want))}",
            file=sys.stderr,
        )
        return 2
    val_clips, _ = val_ds.batch(list(range(min(cfg.val_clips, len(val_ds)))))

    # ---------------------------------------------------------------- model
    vae = build(model_cfg)
    reference: Dict = {}
    fit = None
    if not ckpt_path.exists():
        # Fresh run: start at the linear code, from scratch, or at the pre-trained model being
        # fine-tuned. A fresh run of any architecture records the linear code of its size as
        # the floor it must clear.
        if args.init in ("linear", "scratch"):
            fit = fit_linear_code_on(linear_code_config(model_cfg), train_ds)
            if args.init == "linear":
                init_from_linear_code(vae, fit)
        else:
            try:
                base, base_meta = load_autoencoder(args.init)
            except (FileNotFoundError, ValueError, KeyError) as err:
                print(f"train_ae: --init: {err}", file=sys.stderr)
                return 2
            try:
                vae.load_from(base)
            except ValueError as err:
                print(f"train_ae: --init {args.init}: {err}", file=sys.stderr)
                return 2
            reference["init"] = {"run_id": base_meta.get("run_id"), "step": base_meta.get("step")}
            if not cfg.train_encoder:
                # The latents are the init's, or those its own decoder fine-tune kept.
                reference["latents_from"] = base_meta.get("latents_from") or reference["init"]
    if not cfg.train_encoder:
        if fit is not None:
            print("train_ae: --train-encoder False needs an --init checkpoint", file=sys.stderr)
            return 2
        vae.encoder.requires_grad_(False)
    vae = vae.to(device)
    ema = copy.deepcopy(vae).eval().requires_grad_(False)
    forward = AETrainingForward(vae, cfg.se_filter)
    if dist_info.world_size > 1:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[dist_info.local_rank] if device.type == "cuda" else None
        )
    trained = [(n, p) for n, p in vae.named_parameters() if p.requires_grad]
    linear = [p for n, p in trained if ".linear." in n]
    others = [p for n, p in trained if ".linear." not in n]
    opt = torch.optim.AdamW(
        [{"params": others, "lr_scale": 1.0}, {"params": linear, "lr_scale": cfg.linear_lr_scale}],
        lr=cfg.lr,
        betas=(0.9, 0.99),
        weight_decay=cfg.weight_decay,
    )
    disc = disc_opt = disc_last_weight = None
    if cfg.disc_start >= 0:
        try:
            disc_last_weight = vae.output_layer().weight  # where adaptive_weight balances
        except NotImplementedError as err:
            print(f"train_ae: --disc-start: {err}", file=sys.stderr)
            return 2
        disc = PatchDiscriminator().to(device)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    autocast = autocast_for(device, cfg.cpu_bf16)

    # ---------------------------------------------------------------- resume
    def restore(state: Dict) -> int:
        if state["config"] != model_cfg.to_dict() or state["variant"] != args.variant:
            raise ValueError(f"{ckpt_path} was made with another config or variant")
        vae.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        if state.get("latents_from") is not None:
            reference["latents_from"] = state["latents_from"]
        if disc is not None and state.get("disc") is not None:
            disc.load_state_dict(state["disc"])
            disc_opt.load_state_dict(state["disc_opt"])
        return state["step"]

    try:
        step = run.resume(restore)
    except ValueError as err:
        print(f"train_ae: {err}", file=sys.stderr)
        return 2
    if step == 0:
        events.write(
            "config",
            step=0,
            run_id=run_id,
            kind="autoencoder",
            variant=args.variant,
            se_modes=list(VARIANT_MODES[args.variant]),
            init=reference.get("init", args.init),
            latents_from=reference.get("latents_from"),
            model=model_cfg.to_dict(),
            train=asdict(cfg),
            data=portable_path(data_root),
            classes=train_ds.classes,
            train_clips=len(train_ds),
            val_clips=len(val_clips),
            parameters={
                "encoder": count_parameters(vae.encoder),
                "decoder": count_parameters(vae.decoder),
            },
            device=str(device),
            world_size=dist_info.world_size,
            torch=torch.__version__,
        )
        run.start()
        if fit is not None and is_main:
            # The floor, on the same validation clips as every "val" event: the model at step 0.
            ref = analyse(linear_code_model(linear_code_config(model_cfg), fit), val_clips)
            events.write(
                "reference",
                step=0,
                name="linear_code",
                **{k: v for k, v in ref.items() if not isinstance(v, list) and k != "clips"},
            )

    def save(final: bool = False) -> None:
        run.save(
            step,
            {
                "kind": "autoencoder",
                "architecture": model_cfg.architecture,
                "config": model_cfg.to_dict(),
                "variant": args.variant,
                "train": asdict(cfg),
                "run_id": run_id,
                "step": step,
                "final": final,
                "latents_from": reference.get("latents_from"),
                "model": vae.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "disc": disc.state_dict() if disc else None,
                "disc_opt": disc_opt.state_dict() if disc else None,
            },
            final,
        )

    def evaluate() -> Dict:
        t0 = time.time()
        result = analyse(ema, val_clips)
        if budget is not None:
            budget.note_eval(time.time() - t0)
        scalars = {k: v for k, v in result.items() if not isinstance(v, list)}
        events.write("val", step=step, **scalars)
        if "latent_spectrum" in result:
            events.write("spectrum", step=step, **result)
        return scalars

    # ---------------------------------------------------------------- loop
    log = StepLog(run, cfg.steps, cfg.log_every, step)
    crop_t = cfg.crop_frames or model_cfg.frames
    crop_hw = cfg.crop_size or model_cfg.resolution
    try:
        latent_shape = (cfg.batch_size,) + model_cfg.latent_shape(crop_t, crop_hw, crop_hw)
    except ValueError as err:
        print(f"train_ae: --crop-size/--crop-frames: {err}", file=sys.stderr)
        return 2
    # How far a crop can move in (time, y, x).
    spare = model_cfg.resolution - crop_hw
    clip_room = (model_cfg.frames - crop_t, spare, spare)
    stop_at = min(cfg.steps, args.stop_after) if args.stop_after else cfg.steps
    # On a GPU the whole split sits there as uint8; on the CPU batches are read from the shards.
    source = train_ds.on_device(device) if device.type == "cuda" else train_ds
    start_step = step
    while step < stop_at:
        # The same draws, in the same order, for both variants (see the module docstring).
        draws = step_draws(
            cfg,
            step,
            dist_info.rank,
            len(train_ds),
            latent_shape,
            args.variant,
            clip_room,
            dist_info.world_size,
        )
        idx, noise, mode = draws.indices, draws.noise.to(device), draws.se_mode
        video, _ = source.batch(idx)
        if draws.crop is not None:
            t0, y0, x0 = draws.crop
            video = video[:, :, t0 : t0 + crop_t, y0 : y0 + crop_hw, x0 : x0 + crop_hw]
        if cfg.hflip:
            flips = draws.flips.view(-1, 1, 1, 1, 1).to(video.device)
            video = torch.where(flips, video.flip(-1), video)
        video = video.to(device)  # (B, 3, T, H, W)
        for group in opt.param_groups:
            group["lr"] = group["lr_scale"] * lr_at(step, cfg.lr, cfg.warmup, cfg.steps)

        with autocast:
            extra = None
            if draws.latent_noise is not None:
                extra = cfg.latent_noise * draws.latent_noise.to(device)
            out_ = forward(video, noise, mode if cfg.se_weight > 0 else None, extra)
            rec = reconstruction_loss(out_["recon"].float(), video)
            kl = kl_loss(out_["mean"].float(), out_["logvar"].float())
            loss = rec + cfg.kl_weight * kl
            logs = {"loss_rec": rec.item(), "loss_kl": kl.item()}
            if cfg.grad_weight > 0:
                grad = gradient_loss(out_["recon"].float(), video)
                loss = loss + cfg.grad_weight * grad
                logs["loss_grad"] = grad.item()
            if cfg.profile_weight > 0:
                prof = step_profile_loss(out_["recon"].float(), video)
                loss = loss + cfg.profile_weight * prof
                logs["loss_profile"] = prof.item()
            if "se_recon" in out_:
                se = reconstruction_loss(out_["se_recon"].float(), out_["se_target"])
                loss = loss + cfg.se_weight * se
                logs["loss_se"] = se.item()
            if disc is not None and step >= cfg.disc_start:
                adv = generator_adv_loss(disc(out_["recon"]))
                weight = cfg.disc_weight * adaptive_weight(loss, adv, disc_last_weight)
                loss = loss + weight * adv
                logs.update(loss_adv=adv.item(), adv_weight=float(weight))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()
        if disc is not None:
            with autocast:
                d_loss = hinge_d_loss(disc(video), disc(out_["recon"].detach()))
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
            logs["loss_disc"] = d_loss.item()
        ema_update(ema, vae, step, cfg.ema_decay)
        step += 1
        if budget is not None and budget.update(run, log, cfg, step, start_step, run_id):
            stop_at = min(cfg.steps, args.stop_after) if args.stop_after else cfg.steps

        logs.update(loss=loss.item(), grad_norm=float(grad_norm))
        log.add(
            step,
            logs,
            last=step == stop_at,
            shown={"loss": "loss", "rec": "loss_rec"},
            lr=lr_at(step - 1, cfg.lr, cfg.warmup, cfg.steps),
            se_mode=mode if cfg.se_weight > 0 else None,
        )

        # ------------------------------------------------------------ eval
        if is_main and (step % cfg.eval_every == 0 and step < cfg.steps):
            evaluate()
        # ------------------------------------------------------------ checkpoint
        if step % cfg.ckpt_every == 0 or step == stop_at:
            save()

    # ---------------------------------------------------------------- finish
    if step >= cfg.steps and is_main:
        if cfg.train_encoder:  # a frozen encoder keeps its init's scale: the latents stay put
            calibrate_latent_scale(ema, calibration_clips(train_ds))
        final = evaluate()
        save(final=True)
        save_weights_fp16(
            out / "checkpoints" / "ema-fp16.pt",
            ema,
            args.variant,
            run_id,
            step,
            reference.get("latents_from"),
        )
        run.complete(step, **{k: final[k] for k in ("psnr", "ssim")})
    if dist_info.world_size > 1:
        # DDP keeps the replicas equal by averaging gradients; check it rather than trust it.
        diff = distributed.max_diff_from_rank0(vae)
        events.write("ddp", step=step, world_size=dist_info.world_size, weights_max_abs_diff=diff)
    # The DDP wrapper holds the process group: freed here, before the group is torn down, not
    # when main() returns after it (a rank 0 then hung in that destructor once its peer had gone,
    # in a fresh-clone test run under load).
    del forward
    run.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
