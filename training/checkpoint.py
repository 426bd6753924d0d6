"""Atomic, resumable checkpoints: `output/checkpoints/step-000123/`.

Each checkpoint is written into a hidden temp folder and renamed when complete, so a folder named
`step-*` is always whole; a killed run leaves at most a `.tmp-*` folder, which the next start removes.
Contents: the trainable (LoRA) weights and optimizer state (`state.pt`, or DeepSpeed's own files
under `deepspeed/` with frozen weights excluded), the scheduler, every process's RNG states, and
`trainer_state.json` (step, counters, the config that made it).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREFIX = "step-"


def checkpoint_dir(output: Path) -> Path:
    return Path(output) / "checkpoints"


def list_checkpoints(output: Path) -> list[Path]:
    root = checkpoint_dir(output)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
            and (p / "trainer_state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def newest_checkpoint(output: Path) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


def remove_partial(output: Path) -> list[Path]:
    root = checkpoint_dir(output)
    stale = sorted(root.glob(".tmp-*")) if root.is_dir() else []
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


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save(accelerator, model, optimizer, scheduler, output: Path, step: int, state: dict[str, Any],
         keep: int) -> Path:
    """Collective: every process calls it. Returns the final folder."""
    root = checkpoint_dir(output)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    engine = getattr(accelerator, "deepspeed_engine_wrapped", None)
    if engine is not None:
        engine.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state", exclude_frozen_parameters=True)
    elif accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        torch.save({"trainable": trainable_state(unwrapped), "optimizer": optimizer.state_dict()}, tmp / "state.pt")
    torch.save(rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, ensure_ascii=False), encoding="utf-8")
        if final.exists():  # a re-run of the same step after resume
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(output)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(accelerator, model, optimizer, scheduler, folder: Path) -> dict[str, Any]:
    """Restore everything `save` wrote; returns trainer_state.json."""
    engine = getattr(accelerator, "deepspeed_engine_wrapped", None)
    if engine is not None:
        engine.engine.load_checkpoint(str(folder / "deepspeed"), tag="state", load_module_strict=False,
                                      load_optimizer_states=True, load_lr_scheduler_states=False)
    else:
        saved = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        params = dict(accelerator.unwrap_model(model).named_parameters())
        missing = set(saved["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise RuntimeError(f"{folder}: checkpoint weights do not match this model's trainable "
                               f"parameters ({sorted(missing)[:4]} ...); was the LoRA config changed?")
        with torch.no_grad():
            for name, value in saved["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng_file = folder / f"rng_{accelerator.process_index}.pt"
    if not rng_file.exists():
        raise RuntimeError(f"{folder}: no RNG state for process {accelerator.process_index}; "
                           "resume with the same number of processes as the run that wrote it")
    set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
