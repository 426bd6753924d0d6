"""Every knob of the trainer in one dataclass, plus how presets, YAML files and flags fill it.

Precedence (later wins): dataclass defaults < preset (`presets/NAME.yaml`) < `--paper-parity`
overlay (`presets/paper-parity.yaml`) < YAML config file (`--config`) < command-line flags.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from jinstruct.fields import coerce, field_types
from jinstruct.names import did_you_mean


@dataclass
class TrainConfig:
    # --- what to train on what
    model: str = ""  # hub id or local folder of the base causal LM
    data: str = ""  # hub id (izumi-lab/llm-japanese-dataset[-vanilla]) or a .json/.jsonl/.parquet file
    output: str = "runs/train"  # adapter, checkpoints, metrics.jsonl and the resolved config go here
    preset: str | None = None  # recorded for provenance; set by --preset
    data_revision: str | None = None  # hub revision (tag/branch/commit) of a hub dataset
    model_revision: str | None = None
    trust_remote_code: bool = False  # off unless you trust the model repository's code

    # --- data
    language: str = "ja"  # instruction template: "ja" (Japanese models) or "en" (Alpaca, LLaMA)
    seq_len: int = 256  # right truncation; EOS appended only if it fits
    loss_on: str = "response"  # "response" (prompt masked; our default) or "all" (the paper)
    val_size: int = 2000  # held-out rows (paper: 2,000); 0 disables validation
    split_seed: int = 42  # seed of train_test_split (paper: 42)
    max_rows: int | None = None  # use only the first N rows of the data (after filtering)
    drop_translation: bool = False  # drop rows whose `category` matches translation_pattern
    translation_pattern: str = r"(?i)(trans|honyaku|j-?to-?e|e-?to-?j|ja-?en|en-?ja|j2e|e2j)"
    skip_bad_rows: bool = False  # count and report invalid rows instead of stopping at the first

    # --- batching
    batching: str = "auto"  # auto (pack or group, cheaper per step), pack (shared rows, no cross-attention),
    #                         group (one example per row, sorted by length), pad (the paper: shuffled, padded)
    pad_to_multiple_of: int = 1  # paper: 8
    padding_side: str = "right"  # paper: "left"; only used by "group" and "pad"

    # --- optimisation (Table I and the paper's DeepSpeed config)
    global_batch_size: int = 128  # examples per optimizer step, over all processes
    micro_batch_size: int = 8  # rows per forward pass and process (memory knob)
    epochs: float = 1.0
    max_steps: int | None = None  # cut the run (and its schedule) to N optimizer steps
    stop_at_step: int | None = None  # end this invocation after step N, schedule unchanged (resume later)
    lr: float = 3e-4
    warmup_steps: int = 100  # linear warm-up, then linear decay to 0 (DeepSpeed WarmupDecayLR)
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0  # 0: no clipping (as HF Trainer); negative values are refused
    seed: int = 42  # data order, LoRA init and dropout

    # --- LoRA
    lora_r: int = 4
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None  # None: by architecture (see lora.py)

    # --- hardware
    precision: str = "auto"  # auto (bf16 > fp16 on GPU, fp32 on CPU), bf16, fp16, fp32
    base_fp32: bool = False  # cast the frozen base to fp32 as the paper's code did (slow, parity only)
    deepspeed: str | None = None  # DeepSpeed JSON path or bundled name: zero2, zero2-offload, zero3
    gradient_checkpointing: bool = False
    attn_implementation: str | None = (
        None  # None: flash_attention_2 when installed on GPU, else transformers picks
    )

    # --- running
    eval_every: int = 1000  # optimizer steps between validation losses (paper: 1,000)
    save_every: int = 500  # optimizer steps between checkpoints
    keep_checkpoints: int = 2
    log_every: int = 1
    resume: bool = False  # continue from the newest complete checkpoint in `output`
    overwrite: bool = False  # allow a non-empty `output` that is not a previous run (never a model's folder)
    merge: bool = False  # also write the base model with the adapter merged into output/merged
    report_to: str = "none"  # none, tensorboard, wandb (when installed)
    progress: bool = True  # tqdm bar

    def validate(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"config field {name!r}: {why}")

        if not self.model:
            bad("model", "no base model given; pass --model HUB_ID_OR_FOLDER or --preset NAME")
        if not self.data:
            bad("data", "no data given; pass --data HUB_ID_OR_FILE or --preset NAME")
        choices = {
            "language": ("ja", "en"),
            "loss_on": ("response", "all"),
            "batching": ("auto", "pack", "group", "pad"),
            "padding_side": ("left", "right"),
            "precision": ("auto", "bf16", "fp16", "fp32"),
            "report_to": ("none", "tensorboard", "wandb"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                bad(name, f"{getattr(self, name)!r} is not one of {allowed}")
        for name in (
            "seq_len",
            "global_batch_size",
            "micro_batch_size",
            "pad_to_multiple_of",
            "lora_r",
            "eval_every",
            "save_every",
            "keep_checkpoints",
            "log_every",
        ):
            if getattr(self, name) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("val_size", "warmup_steps"):
            if getattr(self, name) < 0:
                bad(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.max_grad_norm >= 0:  # also refuses NaN
            bad(
                "max_grad_norm",
                f"must be >= 0 (0 turns clipping off), got {self.max_grad_norm}; a negative "
                "value would flip the sign of every gradient",
            )
        if self.epochs <= 0 and self.max_steps is None:
            bad("epochs", "must be > 0 (or set max_steps)")
        for name in ("max_steps", "stop_at_step", "max_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                bad(name, f"must be >= 1 when set, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- presets and files


def _resource(*parts: str):
    return resources.files("jinstruct.training").joinpath(*parts)


def available_presets() -> list[str]:
    folder = _resource("presets")
    return sorted(
        p.name[: -len(".yaml")]
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and p.name != "paper-parity.yaml"
    )


def _read_yaml_resource(name: str) -> dict[str, Any]:
    with _resource("presets", name).open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def load_preset(name: str) -> dict[str, Any]:
    if name not in available_presets():
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return _read_yaml_resource(f"{name}.yaml")


def paper_parity_overrides() -> dict[str, Any]:
    return _read_yaml_resource("paper-parity.yaml")


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(
            f"config file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} (UTF-8): {err}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
    return data


def deepspeed_config_path(name_or_path: str) -> Path:
    """A bundled DeepSpeed JSON by short name (zero2, zero2-offload, zero3) or any path."""
    bundled = _resource("configs", f"ds_{name_or_path.replace('-', '_')}.json")
    if bundled.is_file():
        return Path(str(bundled))
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"DeepSpeed config {name_or_path!r} is neither a bundled name (zero2, zero2-offload, zero3) "
            "nor an existing file"
        )
    return path


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    for key, value in overrides.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ValueError(
                f"{source}: unknown config field {key!r}{did_you_mean(name, known)}; "
                f"known fields: {', '.join(sorted(known))}"
            )
        setattr(config, name, coerce(TrainConfig, name, value, source))
    return config


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jinstruct train",
        description="LoRA instruction tuning (the paper's Table I recipe by preset; every field overridable).",
    )
    parser.add_argument("--preset", help=f"Table I preset: {', '.join(available_presets())}")
    parser.add_argument("--config", help="YAML (or JSON) file of config fields")
    parser.add_argument(
        "--paper-parity",
        action="store_true",
        help="the paper's code exactly: loss on the whole sequence, left padding to 8, "
        "no grouping, base cast to fp32 (presets/paper-parity.yaml)",
    )
    for f in fields(TrainConfig):
        if f.name == "preset":
            continue
        flag = "--" + f.name.replace("_", "-")
        (kind, *_) = field_types(TrainConfig, f.name)
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, dest=f.name, default=None, help="comma-separated")
        else:
            shown = None if f.default is None or f.default == "" else f"(default: {f.default!r})"
            parser.add_argument(flag, dest=f.name, default=None, help=shown)
    return parser


def config_from_args(argv: list[str]) -> TrainConfig:
    args = build_parser().parse_args(argv)
    config = TrainConfig()
    if args.preset:
        apply_overrides(config, load_preset(args.preset), f"preset {args.preset}")
        config.preset = args.preset
    if args.paper_parity:
        apply_overrides(config, paper_parity_overrides(), "paper-parity overlay")
    if args.config:
        apply_overrides(config, load_config_file(args.config), str(args.config))
    flags = {
        k: v for k, v in vars(args).items() if k not in ("preset", "config", "paper_parity") and v is not None
    }
    apply_overrides(config, flags, "command line")
    config.validate()
    return config
