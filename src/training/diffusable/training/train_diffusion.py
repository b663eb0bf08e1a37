"""Train the latent denoiser (rectified flow) on one autoencoder's latent space, logging the
Fréchet distance of its samples over training: the diffusability experiment.

    PYTHONPATH=src/training python3 -m diffusable.training.train_diffusion --ae runs/ae-small-se \
        --config small --steps 3000 --eval-every 500 --out runs/dit-small-se

Run it with the same settings on the baseline and the SE autoencoder: every evaluation samples
the same noise and labels (fixed eval seed), decodes with that run's autoencoder, and compares
against the same real clips with the same extractor, so the two histories are comparable.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.checkpoint import latents_of, load_autoencoder, load_checkpoint
from ..evaluation.classifier import (
    ClassifierConfig,
    classifier_cached,
    get_classifier,
    predict,
    scores_of,
)
from ..evaluation.sample_sheet import contact_sheet
from ..models.denoiser import DENOISER_CONFIGS, Denoiser, get_denoiser_config
from ..events import portable_path
from ..evaluation.features import FeatureExtractor, LatentFD, lfd_ladder, noise_equivalent_t
from ..models.flow import draw_context, drop_labels, flow_pair, sample, sample_time
from ..evaluation.frechet import feature_stats, frechet_distance
from .latent_cache import ae_checkpoint, build_latent_cache, load_latents
from ..evaluation.metrics import grid_ratio, grid_steps
from .loop_utils import (
    add_run_flags,
    autocast_for,
    config_from_flags,
    ema_update,
    lr_at,
    step_generator,
)
from .trainer import LoopConfig, StepBudget, StepLog, start_run


@dataclass
class DiffusionTrainConfig(LoopConfig):
    batch_size: int = 32
    lr: float = 3e-4
    label_dropout: float = 0.1
    time_dist: str = "logit_normal"
    eval_samples: int = 128  # generated clips per evaluation (and real clips they are compared to)
    eval_seed: int = 1234
    sample_steps: int = 25
    sample_method: str = "euler"
    guidance: float = 2.0
    # The class-score / fd_cls3d classifier (classifier.py, cached per dataset): its training
    # steps, and whether this run trains it when it is not cached yet ("train") or only uses it
    # once another process has cached it ("cached": the evaluations before that log no class
    # score and no fd_cls3d, so a long denoiser run need not wait for the classifier).
    classifier_steps: int = ClassifierConfig().steps
    classifier: str = "train"
    val_buckets: int = 5  # flow-matching validation loss on held-out latents, per t-bucket
    # Share of training examples given their first latent frames clean (docs/sampler.md): 0 = a
    # label-only denoiser; > 0 trains image-to-video and extension into the same model.
    context_prob: float = 0.0
    # `lfd` (features.LatentFD): the encoded training latents its reference is drawn from.
    lfd_real: int = 544


PRESETS: Dict[str, DiffusionTrainConfig] = {
    "tiny": DiffusionTrainConfig(
        steps=8,
        batch_size=4,
        warmup=2,
        log_every=1,
        eval_every=4,
        eval_samples=6,
        sample_steps=2,
        classifier_steps=10,
    ),
    "small": DiffusionTrainConfig(),
    "base": DiffusionTrainConfig(
        steps=100_000,
        batch_size=128,
        lr=1e-4,
        warmup=2000,
        eval_every=5000,
        eval_samples=2048,
        log_every=100,
    ),
}


def validation_set(cache: Path, cfg: DiffusionTrainConfig, g: torch.Generator) -> Dict:
    """Held-out latents with fixed noise and one fixed t inside each of `val_buckets` equal
    t-buckets: the same (x0, noise, t) at every evaluation of every run on this cache."""
    x0, y, _ = load_latents(cache, "val")
    k = cfg.val_buckets
    noise = torch.randn((k,) + tuple(x0.shape), generator=g)  # (K, N, C, t, h, w)
    t = (torch.arange(k).view(k, 1) + torch.rand(k, len(x0), generator=g)) / k  # (K, N)
    return {"x0": x0, "labels": y, "noise": noise, "t": t}


@torch.no_grad()
def validation_loss(model: nn.Module, val: Dict, null_class: int, batch: int = 64) -> List[float]:
    """The flow-matching loss (mean squared velocity error) of `model` per t-bucket, with the
    true labels: Open-Sora found this held-out loss tracks sample quality, and it is cheap."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for noise, t in zip(val["noise"], val["t"]):
        total = 0.0
        for i in range(0, len(val["x0"]), batch):
            x0 = val["x0"][i : i + batch].to(device)
            xt, v = flow_pair(x0, noise[i : i + batch].to(device), t[i : i + batch].to(device))
            pred = model(xt, t[i : i + batch].to(device), val["labels"][i : i + batch].to(device))
            total += float(F.mse_loss(pred.float(), v, reduction="sum"))
        out.append(total / val["x0"].numel())
    return out


def eval_draws(cfg: DiffusionTrainConfig, n_clips: int, latent_shape, cache: Path):
    """Every evaluation's fixed inputs, drawn in this order from one generator (so a script can
    rebuild a logged run's): the real train clips the samples are compared with, the samples'
    noise, and the held-out latents with their noise and t (validation_set)."""
    g = torch.Generator().manual_seed(cfg.eval_seed)
    real_idx = torch.randperm(n_clips, generator=g)[: cfg.eval_samples].tolist()
    noise = torch.randn((cfg.eval_samples,) + tuple(latent_shape), generator=g)
    return real_idx, noise, validation_set(cache, cfg, g)


def lfd_reference(latents, val_latents, eval_noise, cfg: DiffusionTrainConfig):
    """Decoder-free: the `lfd` of a run's samples (features.LatentFD: their latents against the
    training latents, before any decoder), and this latent space's ladder: held-out real latents,
    as many as the samples, blended with noise (features.lfd_ladder). Its t = 0 rung is the floor
    (the part of lfd that is small-sample bias); the ladder turns an evaluation's lfd into its
    noise-equivalent t. Its own generator, so adding it left every earlier draw as it was."""
    g = torch.Generator().manual_seed(cfg.eval_seed)
    idx = torch.randperm(len(latents), generator=g)[: cfg.lfd_real]
    latent_fd = LatentFD(latents[idx], eval_noise)
    held_out = val_latents[torch.randperm(len(val_latents), generator=g)[: cfg.eval_samples]]
    ladder = lfd_ladder(latent_fd, held_out, torch.randn(held_out.shape, generator=g))
    return latent_fd, {"floor": ladder[0.0], "n_floor": len(held_out), "ladder": ladder}


def warm_start(path: Path, model: nn.Module, ema: nn.Module, model_cfg, ae: Path) -> Dict:
    """Load a finished (or stopped) denoiser's EMA weights into `model` and `ema`: how a run
    continues past its schedule's end (a new warm-up and cosine, a fresh AdamW) without
    rewriting its own history. It must be the same model on the same autoencoder's latents."""
    ckpt = path / "checkpoints" / "last.pt" if path.is_dir() else path
    state = load_checkpoint(ckpt)
    if state.get("kind") != "denoiser":
        raise ValueError(f"{ckpt.name} is not a denoiser checkpoint")
    want = model_cfg.to_dict()
    # A label-only denoiser may start a context-trained one: context adds one learned vector
    # (`context_flag`, zero at init, so the warm-started model predicts exactly as before) and
    # changes nothing else.
    adds_context = state["config"] == {**want, "context": False} and want.get("context")
    if state["config"] != want and not adds_context:
        raise ValueError(f"{ckpt.name} has another denoiser config: {state['config']}")
    _, ae_meta = load_autoencoder(ae_checkpoint(ae))
    ae_run = {"run_id": ae_meta.get("run_id"), "step": ae_meta.get("step")}
    if "latents" in state:
        # Which encoder made the latents (checkpoint.latents_of, recorded since session 14): any
        # autoencoder with that encoder serves, e.g. a decoder fine-tune of the one trained on.
        same = state["latents"] == latents_of(ae_meta)
    else:
        # Older checkpoints: the path alone cannot tell two autoencoders outside the repository
        # apart (it is then just a file name), so the AE's run id and step are compared too.
        same = (
            state["autoencoder"] == portable_path(ae_checkpoint(ae))
            and state.get("autoencoder_run", ae_run) == ae_run
        )
    if not same:
        raise ValueError(f"{ckpt.name} was trained on the latents of another autoencoder")
    for target in (model, ema):
        missing, unexpected = target.load_state_dict(state["ema"], strict=not adds_context)
        if missing != (["context_flag"] if adds_context else []) or unexpected:
            raise ValueError(f"{ckpt.name}: weights do not match ({missing}, {unexpected})")
    info = {"run_id": state.get("run_id"), "step": state.get("step")}
    return {**info, "context_added": True} if adds_context else info


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Train the latent denoiser on an autoencoder's latents."
    )
    ap.add_argument("--ae", required=True, help="autoencoder run folder (finished) or checkpoint")
    ap.add_argument("--config", default="small", help=f"denoiser: {' | '.join(DENOISER_CONFIGS)}")
    ap.add_argument("--i3d", help="I3D Kinetics-400 weights file: log fvd_i3d")
    ap.add_argument("--experiment", help="name of the experiment (grid) this run belongs to")
    ap.add_argument(
        "--init",
        help="warm start: a denoiser checkpoint (or run folder) of the same config on the same "
        "latents; its EMA weights start this run, with a fresh optimizer and lr schedule",
    )
    add_run_flags(ap, DiffusionTrainConfig)
    args = ap.parse_args(argv)
    cfg = config_from_flags(args, PRESETS.get(args.config, DiffusionTrainConfig()))
    return args, cfg


def main(argv=None) -> int:
    # ---------------------------------------------------------------- setup
    args, cfg = parse_args(argv)
    run = start_run(args)
    device, is_main, dist_info, events, out = run.device, run.is_main, run.dist, run.events, run.out

    # ---------------------------------------------------------------- data: latents + eval set
    try:
        budget = StepBudget.from_args(args)
        get_denoiser_config(args.config)  # fail on a bad name before the expensive part
        i3d = FeatureExtractor.i3d(args.i3d, device) if args.i3d else None
        cache = build_latent_cache(Path(args.ae), args.data, device=device)
        vae, ae_meta = load_autoencoder(ae_checkpoint(Path(args.ae)))
    except (FileNotFoundError, ValueError) as err:
        print(f"train_diffusion: {err}", file=sys.stderr)
        return 2
    latents, labels, info = load_latents(cache, "train")
    classes = info["classes"]
    model_cfg = get_denoiser_config(
        args.config,
        latent_channels=latents.shape[1],
        num_classes=len(classes),
        context=cfg.context_prob > 0,
    )
    vae = vae.to(device).eval()
    from ..data.clips import ClipDataset

    data_root = Path(info["data"])
    real_ds = ClipDataset(data_root, "train")
    classifier_cfg = ClassifierConfig(steps=cfg.classifier_steps)
    if cfg.classifier not in ("train", "cached"):
        print(f"train_diffusion: --classifier must be train or cached, got {cfg.classifier}")
        return 2
    # Every Fréchet distance of the run, each on its own features of the same clips: I3D's when
    # given, the random network's, and the classifier's (trained on the real clips). The first
    # is the run's headline `metric`, as before fd_cls3d existed.
    extractors = ([i3d] if i3d else []) + [FeatureExtractor(device=device)]
    classifier, classifier_info = None, None
    real_idx, eval_noise, val_set = eval_draws(cfg, len(real_ds), latents.shape[1:], cache)
    real_video = real_ds.batch(real_idx)[0]
    real_stats = {x.metric: feature_stats(x.features(real_video)) for x in extractors}

    def attach_classifier() -> None:
        """Load (or train, with --classifier train) the classifier and its fd_cls3d reference."""
        nonlocal classifier, classifier_info
        if classifier is not None:
            return
        if cfg.classifier == "cached" and not classifier_cached(data_root, classifier_cfg):
            return
        classifier, classifier_info = get_classifier(data_root, classifier_cfg)
        x = FeatureExtractor.classifier(classifier, classifier_info, real_ds.frames, device)
        real_stats[x.metric] = feature_stats(x.features(real_video))
        extractors.append(x)

    attach_classifier()
    eval_labels = torch.arange(cfg.eval_samples) % len(classes)
    latent_fd, lfd_space = lfd_reference(latents, val_set["x0"], eval_noise, cfg)
    # constant over the run; logged with every evaluation beside the value it reads
    lfd_record = {
        **latent_fd.describe(),
        **lfd_space,
        "ladder": [[t, v] for t, v in lfd_space["ladder"].items()],
    }

    # ---------------------------------------------------------------- model
    torch.manual_seed(cfg.seed)
    model = Denoiser(model_cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    train_model = model
    if dist_info.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None
        )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = autocast_for(device, cfg.cpu_bf16)
    init_info = None
    if args.init:
        try:
            init_info = warm_start(Path(args.init), model, ema, model_cfg, Path(args.ae))
        except (FileNotFoundError, ValueError) as err:
            print(f"train_diffusion: --init: {err}", file=sys.stderr)
            return 2

    # ---------------------------------------------------------------- resume
    def restore(state: Dict) -> int:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        return state["step"]

    step = run.resume(restore)
    if step == 0:
        events.write(
            "config",
            step=0,
            run_id=out.name,
            kind="diffusion",
            model=model_cfg.to_dict(),
            train=asdict(cfg),
            autoencoder={
                "checkpoint": portable_path(ae_checkpoint(Path(args.ae))),
                "run_id": ae_meta.get("run_id"),
                "variant": ae_meta.get("variant"),
                "step": ae_meta.get("step"),
                # a decoder fine-tune: the run whose encoder (and so latents) it keeps
                **(
                    {"latents_from": ae_meta["latents_from"]} if ae_meta.get("latents_from") else {}
                ),
            },
            latent_cache=portable_path(cache),
            classes=classes,
            train_latents=len(latents),
            parameters=sum(p.numel() for p in model.parameters()),
            device=str(device),
            experiment=args.experiment,
            init=init_info,
            metric=extractors[0].describe(),
            metrics={x.metric: x.describe() for x in extractors},
            classifier=classifier_info,
            torch=torch.__version__,
        )
        run.start()

    def save(final: bool = False) -> None:
        run.save(
            step,
            {
                "kind": "denoiser",
                "config": model_cfg.to_dict(),
                "train": asdict(cfg),
                "run_id": out.name,
                "step": step,
                "final": final,
                "classes": classes,
                "autoencoder": portable_path(ae_checkpoint(Path(args.ae))),
                "autoencoder_run": {"run_id": ae_meta.get("run_id"), "step": ae_meta.get("step")},
                "latents": latents_of(ae_meta),
                # The training window (denoiser_bundle's manifest "conditioning").
                "window": {"frames": real_ds.frames, "latents": int(latents.shape[2])},
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
            },
            final,
        )

    last_eval: Dict = {}

    @torch.no_grad()
    def evaluate() -> Dict:
        t0 = time.time()
        attach_classifier()
        videos, zs = [], []
        for i in range(0, cfg.eval_samples, 32):
            x0 = sample(
                ema,
                eval_noise[i : i + 32].to(device),
                eval_labels[i : i + 32].to(device),
                steps=cfg.sample_steps,
                guidance=cfg.guidance,
                null_class=model_cfg.null_class,
                method=cfg.sample_method,
            )
            zs.append(x0.float().cpu())
            videos.append(vae.decode_scaled(x0).clamp(-1, 1).cpu())
        video = torch.cat(videos)
        lfd_raw = latent_fd.distance(torch.cat(zs))
        lfd = lfd_raw / latent_fd.noise_fd
        fds = {
            x.metric: frechet_distance(*real_stats[x.metric], *feature_stats(x.features(video)))
            for x in extractors
        }
        scores = {"mean": None}
        predicted = eval_labels.tolist()  # no classifier yet: the sheet marks nothing wrong
        if classifier is not None:
            size = classifier_info["config"]["size"]
            pred = predict(classifier, video, size)
            scores = scores_of(pred, eval_labels, classes)
            predicted = pred.tolist()
        # Numbers alone hide mosaics: every evaluation leaves a contact sheet to look at.
        contact_sheet(
            video,
            eval_labels.tolist(),
            predicted,
            classes,
            out / "samples" / f"step{step:06d}.png",
            f"{out.name}, step {step} (EMA): {cfg.sample_steps} {cfg.sample_method} steps, "
            f"guidance {cfg.guidance:g}, class score {scores['mean']}",
        )
        by_t = validation_loss(ema, val_set, model_cfg.null_class)
        record = {
            **fds,
            **extractors[0].describe(),
            "extractors": {x.metric: x.describe() for x in extractors},
            "lfd": lfd,
            "lfd_t": noise_equivalent_t(lfd, lfd_space["ladder"]),
            "lfd_raw": lfd_raw,
            "lfd_extractor": lfd_record,
            "val_loss": sum(by_t) / len(by_t),
            **{f"val_loss_t{i}": v for i, v in enumerate(by_t)},
            "val_loss_t_edges": [i / cfg.val_buckets for i in range(cfg.val_buckets + 1)],
            "n_val_latents": len(val_set["x0"]),
            "n_generated": len(video),
            "n_real": len(real_idx),
            "sample_steps": cfg.sample_steps,
            "guidance": cfg.guidance,
            "class_score": scores["mean"],
            "class_scores": scores,
            # 8-px block edges against the inside of blocks in the decoded samples (real ~1.0)
            "grid_ratio": grid_ratio(grid_steps(video)),
            "classifier": None if classifier_info is None else classifier_info["key"],
            "eval_s": time.time() - t0,
        }
        events.write("eval", step=step, **record)
        last_eval.update(record)
        if budget is not None:
            budget.note_eval(record["eval_s"])
        return record

    # ---------------------------------------------------------------- loop
    log = StepLog(run, cfg.steps, cfg.log_every, step)
    stop_at = min(cfg.steps, args.stop_after) if args.stop_after else cfg.steps
    if step == 0 and is_main:
        evaluate()  # step 0: the untrained model, the common starting point of both histories
    start_step = step
    while step < stop_at:
        g = step_generator(cfg.seed, step, dist_info.rank)
        idx = torch.randint(len(latents), (cfg.batch_size,), generator=g)
        x0 = latents[idx].to(device)  # (B, C, t, h, w)
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = sample_time(cfg.batch_size, g, cfg.time_dist).to(device)
        y = drop_labels(labels[idx], model_cfg.null_class, cfg.label_dropout, g).to(device)
        k = draw_context(cfg.batch_size, x0.shape[2], cfg.context_prob, g).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps)
        xt, v_target = flow_pair(x0, noise, t)
        with autocast:
            if model_cfg.context:
                # The given frames are clean in the input and left out of the loss.
                frame = torch.arange(x0.shape[2], device=device)
                given = (frame[None] < k[:, None]).to(x0.dtype)[:, None, :, None, None]
                xt = given * x0 + (1 - given) * xt
                err = (train_model(xt, t, y, k).float() - v_target).square() * (1 - given)
                loss = err.sum() / (1 - given).expand_as(err).sum().clamp_min(1.0)
            else:
                loss = F.mse_loss(train_model(xt, t, y).float(), v_target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, step, cfg.ema_decay)
        step += 1
        if budget is not None and budget.update(run, log, cfg, step, start_step, out.name):
            stop_at = min(cfg.steps, args.stop_after) if args.stop_after else cfg.steps

        log.add(
            step,
            {"loss": loss.item(), "grad_norm": float(grad_norm)},
            last=step == stop_at,
            lr=lr_at(step - 1, cfg.lr, cfg.warmup, cfg.steps),
        )
        # ------------------------------------------------------------ eval
        if is_main and step % cfg.eval_every == 0:
            evaluate()
        # ------------------------------------------------------------ checkpoint
        if step % cfg.eval_every == 0 or step == stop_at:
            save()

    # ---------------------------------------------------------------- finish
    if step >= cfg.steps and is_main:
        if step % cfg.eval_every:
            evaluate()
        save(final=True)
        kept = [x.metric for x in extractors] + ["lfd", "lfd_t", "class_score", "val_loss"]
        run.complete(step, **{k: last_eval.get(k) for k in kept})
    del train_model  # the DDP wrapper goes before its process group (see train_ae)
    run.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
