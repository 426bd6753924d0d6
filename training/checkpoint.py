"""Atomic, resumable checkpoints: `output/checkpoints/step-000123/`.

Each checkpoint is written into a hidden temp folder and renamed when complete, so a folder named
`step-*` is always whole; a killed run leaves at most a `.tmp-*` folder, which the next start removes.
Contents: the trainable (LoRA) weights and optimizer state (`state.pt`, or DeepSpeed's own files
under `deepspeed/` with frozen weights excluded), the scheduler, every process's RNG states
(`rng_N.safetensors`: tensors plus JSON metadata, no pickle), and `trainer_state.json` (step,
counters, the config that made it). Resuming reads `trainer_state.json` first, so the caller can
compare the run's config before any weight is loaded; every `.pt` file is read with
`weights_only=True`, so a checkpoint folder can never run code.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jinstruct.atomic import TEMP_PREFIX, publish

PREFIX = "step-"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message says why and what to do."""


def checkpoint_dir(output: Path) -> Path:
    return Path(output) / "checkpoints"


def list_checkpoints(output: Path) -> list[Path]:
    root = checkpoint_dir(output)
    if not root.is_dir():
        return []
    done = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / "trainer_state.json").is_file()
    ]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def newest_checkpoint(output: Path) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


def remove_partial(output: Path) -> list[Path]:
    root = checkpoint_dir(output)
    stale = sorted(root.glob(f"{TEMP_PREFIX}*")) if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng_state(path: Path) -> None:
    """The RNG states as safetensors: torch/CUDA states as tensors, Python/NumPy states as JSON metadata."""
    from safetensors.torch import save_file

    state = rng_state()
    version, internal, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    tensors = {"torch": state["torch"], **{f"cuda_{i}": s for i, s in enumerate(state.get("cuda", []))}}
    meta = {
        "python": json.dumps([version, list(internal), gauss]),
        "numpy": json.dumps([name, keys.tolist(), int(pos), int(has_gauss), float(cached)]),
    }
    save_file(tensors, str(path), metadata=meta)


def load_rng_state(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    try:
        version, internal, gauss = json.loads(meta["python"])
        name, keys, pos, has_gauss, cached = json.loads(meta["numpy"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: not an RNG state written by jinstruct ({err})") from None
    cuda = [tensors[f"cuda_{i}"] for i in range(sum(k.startswith("cuda_") for k in tensors))]
    return {
        "python": (version, tuple(internal), gauss),
        "numpy": (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached),
        "torch": tensors["torch"],
        **({"cuda": cuda} if cuda else {}),
    }


def _deepspeed_globals() -> list:
    """The few non-tensor classes DeepSpeed pickles into its ZeRO optimizer states (ZeRO-2 and -3)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


@contextlib.contextmanager
def weights_only_loads():
    """DeepSpeed's checkpoint engine calls `torch.load(..., weights_only=False)`; while it restores our
    checkpoint every such call is made with `weights_only=True` and an allow-list of its own classes."""
    original = torch.load
    allowed = _deepspeed_globals()

    def load(*args, **kwargs):
        kwargs["weights_only"] = True
        with torch.serialization.safe_globals(allowed):
            return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def read_state(folder: Path) -> dict[str, Any]:
    """trainer_state.json (plain JSON): what to compare before anything of the checkpoint is loaded."""
    return json.loads((Path(folder) / "trainer_state.json").read_text(encoding="utf-8"))


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save(
    accelerator, model, optimizer, scheduler, output: Path, step: int, state: dict[str, Any], keep: int
) -> Path:
    """Collective: every process calls it. Returns the final folder."""
    root = checkpoint_dir(output)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f"{TEMP_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    engine = getattr(accelerator, "deepspeed_engine_wrapped", None)
    if engine is not None:
        engine.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state", exclude_frozen_parameters=True)
    elif accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        torch.save(
            {"trainable": trainable_state(unwrapped), "optimizer": optimizer.state_dict()}, tmp / "state.pt"
        )
    save_rng_state(tmp / f"rng_{accelerator.process_index}.safetensors")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "trainer_state.json").write_text(
            json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        publish(tmp, final)  # replaces the folder of a re-run of the same step after resume
        for old in list_checkpoints(output)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(accelerator, model, optimizer, scheduler, folder: Path) -> dict[str, Any]:
    """Restore everything `save` wrote; returns trainer_state.json. Compare `read_state(folder)` first."""
    rng_file = folder / f"rng_{accelerator.process_index}.safetensors"
    if not rng_file.exists():
        old = rng_file.with_suffix(".pt").exists()
        raise CheckpointError(
            f"{folder}: no RNG state for process {accelerator.process_index}; "
            + (
                "this checkpoint was written by an older jinstruct as a pickle, which is never loaded (it could "
                "run code); start the run again in a new --output folder"
                if old
                else "resume with the same number of processes as the run that wrote it"
            )
        )
    engine = getattr(accelerator, "deepspeed_engine_wrapped", None)
    if engine is not None:
        with weights_only_loads():
            engine.engine.load_checkpoint(
                str(folder / "deepspeed"),
                tag="state",
                load_module_strict=False,
                load_optimizer_states=True,
                load_lr_scheduler_states=False,
            )
    else:
        saved = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        params = dict(accelerator.unwrap_model(model).named_parameters())
        missing = set(saved["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise CheckpointError(
                f"{folder}: checkpoint weights do not match this model's trainable "
                f"parameters ({sorted(missing)[:4]} ...); was the LoRA config changed?"
            )
        with torch.no_grad():
            for name, value in saved["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    set_rng_state(load_rng_state(rng_file))
    return read_state(folder)
