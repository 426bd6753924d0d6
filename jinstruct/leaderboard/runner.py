"""Score the units a suite needs with lm-eval, skipping those already on disk.

A model is loaded once (stock `hf`, or the faster `hf-fast` backend where it is registered) and
`lm_eval.simple_evaluate` runs one (task, shots) unit at a time, so every finished unit is saved
before the next starts.
"""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from jinstruct.leaderboard.config import ConfigError, ModelSpec, RunConfig, Suite
from jinstruct.leaderboard.lengths import adapter_train_seq_len, measure
from jinstruct.leaderboard.settings import describe_change, settings_digest, unit_settings
from jinstruct.leaderboard.store import Store, UnitKey, harness_version, task_slice
from jinstruct.names import task_hint

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    scored: list[UnitKey]
    skipped: list[UnitKey]
    backends: dict[str, str]


def unit_key(
    spec: ModelSpec, task: str, shots: int, limit: int | None, settings: str | None = None
) -> UnitKey:
    return UnitKey(spec.base_model, spec.adapter, task, shots, harness_version(), limit, settings)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_lm(spec: ModelSpec):
    """(lm-eval LM object, backend name). `auto` tries hf-fast, and falls back to stock hf with a note."""
    from lm_eval.api.registry import get_model

    wanted = spec.backend
    candidates = ["hf-fast", "hf"] if wanted == "auto" else [wanted]
    if "hf-fast" in candidates:
        try:
            import jinstruct.scoring  # noqa: F401  (registers hf-fast when it is built)
        except ImportError as err:
            log.info("hf-fast backend unavailable: %s", err)
    last_err: Exception | None = None
    for name in candidates:
        try:
            cls = get_model(name)
        except (KeyError, ValueError) as err:
            last_err = err
            continue
        try:
            lm = cls.create_from_arg_obj(
                spec.lm_eval_args(), {"batch_size": spec.batch_size, "device": _device()}
            )
            return lm, name
        except Exception as err:  # a backend that fails on this model must not stop the leaderboard
            if wanted != "auto" or name == candidates[-1]:
                raise
            print(
                f"leaderboard: backend {name} failed for {spec.name} ({err}); using stock hf", file=sys.stderr
            )
            last_err = err
    raise RuntimeError(f"no lm-eval backend could load {spec.name}: {last_err}")


def _task_manager(metadata: dict[str, Any], tasks: list[str]):
    from lm_eval.tasks import TaskManager

    from jinstruct.harness_tasks import tasks_dir

    ours = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
    if all(t in ours.all_tasks for t in tasks):
        return ours
    # A suite may name stock lm-eval tasks too; scanning lm-eval's own folder costs a few seconds.
    tm = TaskManager(include_path=str(tasks_dir()), include_defaults=True, metadata=metadata)
    missing = [t for t in tasks if t not in tm.all_tasks]
    if missing:
        raise ConfigError(
            f"the suite names tasks that neither jinstruct nor lm-eval defines: {', '.join(missing)}. "
            + task_hint(missing)
        )
    return tm


def _model_max_length(lm) -> int | None:
    try:
        return int(lm.max_length)
    except Exception:
        return None


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N): shard K (counted from 0) of N, as in a job array `--array=0-(N-1)`."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. --shard 0/4 (K counts from 0)") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(
            f"--shard {text!r}: K must be 0..N-1 (e.g. Slurm --array=0-{max(n, 1) - 1} and "
            f"--shard $SLURM_ARRAY_TASK_ID/{max(n, 1)})"
        )
    return k, n


def shard_units(models: list[ModelSpec], suite: Suite, shard: tuple[int, int]) -> set[tuple[str, str, int]]:
    """Every N-th (model, task, shots) unit, starting at the K-th, over all models in file order."""
    k, n = shard
    every = [(spec.name, task, shots) for spec in models for task, shots in suite.units(spec)]
    return set(every[k::n])


def run(
    cfg: RunConfig,
    suite: Suite,
    store: Store,
    *,
    force: bool = False,
    bootstrap_iters: int = 1000,
    only: list[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> RunReport:
    import lm_eval

    report = RunReport([], [], {})
    models = [m for m in cfg.models if not only or m.name in only]
    on_disk = store.records()
    mine = shard_units(models, suite, shard) if shard else None
    for spec in models:
        units = suite.units(spec)
        if mine is not None:
            units = [(t, k) for t, k in units if (spec.name, t, k) in mine]
            if not units:
                continue
        settings = unit_settings(spec, cfg.metadata)
        digest = settings_digest(settings)
        keys = {(t, k): unit_key(spec, t, k, cfg.limit, digest) for t, k in units}
        todo = [(t, k) for t, k in units if force or not store.has(keys[(t, k)])]
        report.skipped += [keys[u] for u in units if u not in todo]
        for unit in todo:
            stale = [r for r in on_disk if r.key.same_unit(keys[unit]) and r.key != keys[unit]]
            if stale and not force:
                change = describe_change(stale[-1].raw.get("jinstruct", {}).get("settings"), settings)
                print(
                    f"leaderboard: {spec.name}: {unit[0]} {unit[1]}-shot on disk ({stale[-1].path.name}) was "
                    f"computed under different settings ({change}); re-scoring",
                    file=sys.stderr,
                )
        if not todo:
            print(f"leaderboard: {spec.name}: all {len(units)} results already computed, skipped")
            continue
        if len(todo) < len(units):
            print(
                f"leaderboard: {spec.name}: {len(units) - len(todo)} of {len(units)} results on disk, resuming"
            )
        train_seq_len, seq_src = (
            (spec.train_seq_len, "models file") if spec.train_seq_len else adapter_train_seq_len(spec.adapter)
        )
        metadata = {**spec.lm_eval_args(), **cfg.metadata}
        tm = _task_manager(metadata, sorted({t for t, _ in todo}))  # before the model: a task typo fails fast
        lm, backend = load_lm(spec)
        report.backends[spec.name] = backend
        max_len = _model_max_length(lm)
        # One lm-eval call per shot count (tasks together), one saved file per task.
        by_shots: dict[int, list[str]] = {}
        for task, shots in todo:
            by_shots.setdefault(shots, []).append(task)
        bar = tqdm(total=len(todo), desc=f"scoring {spec.name}", unit="task", file=sys.stderr)
        for shots, tasks in by_shots.items():
            bar.set_postfix_str(f"{','.join(tasks)} {shots}-shot")
            res = lm_eval.simple_evaluate(
                model=lm,
                tasks=tasks,
                num_fewshot=shots,
                limit=cfg.limit,
                bootstrap_iters=bootstrap_iters,
                log_samples=True,
                task_manager=tm,
                metadata=metadata,
            )
            if res is None:  # not the main process of a distributed run
                continue
            res.setdefault("config", {})["model_args"] = spec.model_args_string()
            res["config"]["model"] = backend
            for task in tasks:
                part = task_slice(res, task)
                samples = (part.get("samples") or {}).get(task, [])
                lengths = measure(samples, lm.tokenizer, max_len, train_seq_len) if samples else None
                if lengths is not None:
                    lengths["train_seq_len_from"] = seq_src
                extra = {"backend": backend, "prompt_version": spec.prompt_version, "settings": settings}
                store.save(keys[(task, shots)], part, lengths, spec.name, extra)
                report.scored.append(keys[(task, shots)])
                bar.update(1)
        bar.close()
        del lm
        gc.collect()
    return report
