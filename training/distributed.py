"""Accelerate and DeepSpeed plumbing, so that train.py reads as the recipe.

What the recipe asks of it: an accelerator for a config (`accelerator_for`, which also leaves the
process reusable afterwards), the optimizer DeepSpeed's offload needs, `prepare`, micro steps whose
last one syncs gradients, one optimizer step with its gradient norm, a sum over processes, and the
full weights for saving. Every private Accelerate call is at the bottom of this file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from jinstruct.training.config import TrainConfig, deepspeed_config_path


@contextlib.contextmanager
def accelerator_for(config: TrainConfig) -> Iterator[tuple[Any, dict | None]]:
    """(accelerator, resolved DeepSpeed config or None); afterwards the process can train again."""
    single_process_env(config)
    accelerator, ds_config = make_accelerator(config)
    try:
        yield accelerator, ds_config
    finally:
        release(accelerator)


def resolve_precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return {"fp32": "no"}.get(config.precision, config.precision)
    # `accelerate launch` exports ACCELERATE_MIXED_PRECISION=no when its config names none, so the
    # launcher's setting is not consulted: --precision decides.
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def deepspeed_json(config: TrainConfig) -> dict | None:
    path = config.deepspeed
    if path is None and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if not path:
            raise ValueError(
                "accelerate is set up for DeepSpeed without a config file; set deepspeed_config_file "
                "in the accelerate config (see training/configs/) or pass --deepspeed zero2"
            )
    if path is None:
        return None
    ds = json.loads(deepspeed_config_path(path).read_text(encoding="utf-8"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # Our loop marks accumulation boundaries itself and normalises the loss over the whole step, so
    # DeepSpeed sees one micro batch per step and must not rescale the loss.
    ds["train_micro_batch_size_per_gpu"] = config.micro_batch_size
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = config.micro_batch_size * world
    ds["gradient_clipping"] = config.max_grad_norm
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(
                f"DeepSpeed config {path}: remove the {key!r} section; the recipe sets the optimizer "
                "and schedule from the training config"
            )
    return ds


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    ds_config = deepspeed_json(config)
    plugin, handlers = None, []
    if ds_config is not None:
        stage = ds_config.get("zero_optimization", {}).get("stage", 0)
        plugin = DeepSpeedPlugin(hf_ds_config=ds_config, zero3_init_flag=stage == 3)
        if not torch.cuda.is_available():
            # Without a GPU accelerate picks no backend and would count every process as rank 0 of 1.
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=resolve_precision(config),
        deepspeed_plugin=plugin,
        kwargs_handlers=handlers,
        log_with=None if config.report_to == "none" else config.report_to,
        project_dir=config.output,
    )
    if config.report_to != "none":
        accelerator.init_trackers(
            "jinstruct-train",
            config={k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))},
        )
    if ds_config is not None:
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    return accelerator, ds_config


def single_process_env(config: TrainConfig) -> bool:
    """DeepSpeed needs a process group even for one process; make one when not under a launcher.

    The group then lives as long as the Python process (DeepSpeed caches it), so a later in-process
    run (the demo, the tests) reuses it.
    """
    if config.deepspeed is None or "LOCAL_RANK" in os.environ:
        return False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return True


def make_optimizer(params, config: TrainConfig, ds_config: dict | None):
    """AdamW with the config's settings; DeepSpeed's CPU Adam when its optimizer state lives on the CPU."""
    kwargs = dict(
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    offload = (
        (ds_config or {}).get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    )
    if offload == "cpu":  # DeepSpeed's CPU optimizer offload needs its CPU Adam
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def prepare(accelerator, model, optimizer, config: TrainConfig, ds_config: dict | None):
    """accelerator.prepare for the model and optimizer (the scheduler stays ours: it steps per optimizer step)."""
    if ds_config is not None:
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = (
            config.micro_batch_size
        )
    model, optimizer = accelerator.prepare(model, optimizer)
    if ds_config is not None:  # the engine steps the optimizer, so torch cannot see the order; it is right
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
    return model, optimizer


@contextlib.contextmanager
def micro_step(accelerator, model, sync: bool, deepspeed: bool):
    """Gradients of non-final micro batches are accumulated without syncing or stepping.

    The number of micro batches per step varies with packing, so accelerate's fixed-count
    `accumulate()` does not fit; we tell it directly which micro batch ends the step (its DeepSpeed
    wrapper reads the same flag to set the engine's accumulation boundary).
    """
    _set_sync_gradients(accelerator, sync)
    context = contextlib.nullcontext() if (sync or deepspeed) else accelerator.no_sync(model)
    with context:
        yield
    _set_sync_gradients(accelerator, True)


def optimizer_step(accelerator, optimizer, params, max_grad_norm: float, deepspeed: bool):
    """Clip, step and clear the gradients (DeepSpeed's engine did all three in backward); returns the
    gradient norm before clipping."""
    if deepspeed:
        return accelerator.deepspeed_engine_wrapped.get_global_grad_norm()
    # 0 turns clipping off; an infinite bound still returns the norm for the log.
    grad_norm = accelerator.clip_grad_norm_(params, max_grad_norm or math.inf)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def sum_over_processes(accelerator, values: torch.Tensor) -> torch.Tensor:
    return accelerator.reduce(values.to(accelerator.device), "sum").cpu()


def full_state_dict(accelerator, model) -> dict | None:
    """The whole model's weights under ZeRO-3 (gathered from every process); None when each process has them."""
    if accelerator.state.deepspeed_plugin is not None and accelerator.state.deepspeed_plugin.zero_stage == 3:
        return accelerator.get_state_dict(model)
    return None


def release(accelerator) -> None:
    """Leave the process reusable: train() may be called again, with or without DeepSpeed."""
    if accelerator.trackers:
        accelerator.end_training()
    accelerator.free_memory()
    os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)  # set by Accelerator(deepspeed_plugin=...)
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # ZeRO-3 registers itself globally for from_pretrained
    _reset_accelerate_state()


# ---------------------------------------------------------------- private Accelerate calls
# Accelerate has no public API for either need; both are small and pinned by the training tests
# (tests/test_training_run.py, tests/test_training_deepspeed.py), which fail if a release changes them.


def _set_sync_gradients(accelerator, sync: bool) -> None:
    # Marks the micro batch that ends an optimizer step when their number varies from step to step.
    accelerator.gradient_state._set_sync_gradients(sync)


def _reset_accelerate_state() -> None:
    # Accelerate's state is a process-wide singleton; a second Accelerator (another train() in the same
    # process, with other precision or DeepSpeed settings) needs it cleared.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
