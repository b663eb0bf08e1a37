"""The trainers' generated flags: one per config field, parsed by the field's type; a boolean
reads "False" as False (argparse's type=bool read every non-empty string as True)."""

import argparse
from dataclasses import dataclass, replace

import pytest
import torch

from diffusable.training.loop_utils import add_run_flags, config_from_flags, parse_bool
from diffusable.training.train_ae import TrainConfig
from diffusable.training.train_diffusion import DiffusionTrainConfig


@pytest.mark.parametrize(
    "text,value",
    [
        ("False", False),
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        ("True", True),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("On", True),
    ],
)
def test_parse_bool(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "Fals"])
def test_parse_bool_refuses_other_words(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        parse_bool(text)


def _parse(config_cls, argv):
    ap = argparse.ArgumentParser()
    add_run_flags(ap, config_cls)
    return ap.parse_args(["--out", "x", *argv])


def test_train_ae_hflip_false_is_false():
    preset = TrainConfig()
    assert preset.hflip is True
    cfg = config_from_flags(_parse(TrainConfig, ["--hflip", "False"]), preset)
    assert cfg.hflip is False
    flipped_off = replace(preset, hflip=False)
    cfg = config_from_flags(_parse(TrainConfig, ["--hflip", "true"]), flipped_off)
    assert cfg.hflip is True
    # Not given: the preset's value.
    assert config_from_flags(_parse(TrainConfig, []), preset).hflip is True


def test_a_bad_boolean_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(TrainConfig, ["--hflip", "maybe"])
    assert exit_info.value.code == 2
    assert "--hflip: expected true or false, got 'maybe'" in capsys.readouterr().err


def test_other_fields_keep_their_types():
    args = _parse(TrainConfig, ["--lr", "1e-4", "--steps", "12", "--se-filter", "box"])
    cfg = config_from_flags(args, TrainConfig())
    assert (cfg.lr, cfg.steps, cfg.se_filter) == (1e-4, 12, "box")
    args = _parse(DiffusionTrainConfig, ["--context-prob", "0.5"])
    assert config_from_flags(args, DiffusionTrainConfig()).context_prob == 0.5


@dataclass
class _Flags:
    on: bool = False
    n: int = 3


def test_every_bool_field_of_any_config():
    cfg = config_from_flags(_parse(_Flags, ["--on", "yes", "--n", "4"]), _Flags())
    assert (cfg.on, cfg.n) == (True, 4)
    assert config_from_flags(_parse(_Flags, ["--on", "0"]), _Flags(on=True)).on is False


def test_cpu_bf16_autocast_is_opt_in():
    from diffusable.training.loop_utils import autocast_for

    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    cpu = torch.device("cpu")
    with autocast_for(cpu):
        assert layer(x).dtype == torch.float32
    with autocast_for(cpu, cpu_bf16=True):
        assert layer(x).dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32  # the weights stay fp32
