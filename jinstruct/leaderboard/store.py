"""Raw results on disk: one lm-eval results JSON per (model, adapter, task, shots, harness version,
limit, settings); `settings` is a digest of everything else that can change a number (settings.py).

Each unit is written atomically (temporary file, then rename) as soon as it is scored, so an
interrupted run loses at most the unit in progress, and a re-run skips every unit already on disk.
The file is lm-eval's own results dict (without the per-sample logs), plus a `jinstruct` entry with
the key and the example lengths that the markers are computed from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from jinstruct.atomic import atomic_write


def harness_version() -> str:
    """What a result is only valid for: the harness and the task definitions (shipped with jinstruct)."""

    def v(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "unknown"

    return f"lm_eval=={v('lm_eval')};jinstruct=={v('jinstruct')}"


@dataclass(frozen=True)
class UnitKey:
    model: str
    adapter: str | None
    task: str
    shots: int
    harness: str
    limit: int | None = None  # a --limit run never stands in for a full one
    settings: str | None = None  # digest of settings.unit_settings; None: gathered, or an older jinstruct

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.settings is None:  # keeps the digest of keys written before `settings` existed
            del out["settings"]
        return out

    def same_unit(self, other: UnitKey) -> bool:
        """The same model, adapter, task, shots and limit, whatever the settings and harness."""
        return (self.model, self.adapter, self.task, self.shots, self.limit) == (
            other.model,
            other.adapter,
            other.task,
            other.shots,
            other.limit,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UnitKey:
        return cls(
            d["model"],
            d.get("adapter"),
            d["task"],
            int(d["shots"]),
            d["harness"],
            d.get("limit"),
            d.get("settings"),
        )

    def filename(self) -> str:
        def slug(s: str | None) -> str:
            return re.sub(r"[^A-Za-z0-9._-]+", "-", s or "none").strip("-")[-60:]

        digest = hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]
        parts = [slug(self.model), slug(self.adapter), self.task, f"{self.shots}shot"]
        if self.limit is not None:
            parts.append(f"limit{self.limit}")
        return "__".join(parts) + f"__{digest}.json"


@dataclass
class Record:
    """One scored unit as read back from disk."""

    key: UnitKey
    path: Path
    metrics: dict[str, float]  # metric name -> value (lm-eval's "acc,none" keys without the filter)
    stderr: dict[str, float]  # metric name -> stderr, where lm-eval computed one
    lengths: dict[str, Any] | None
    model_name: str | None
    raw: dict[str, Any]


def split_metrics(task_results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """lm-eval's {"acc,none": .., "acc_stderr,none": ..} into ({acc: ..}, {acc: stderr})."""
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for full, value in task_results.items():
        name = full.split(",", 1)[0]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name.endswith("_stderr"):
            stderr[name[: -len("_stderr")]] = float(value)
        else:
            metrics[name] = float(value)
    return metrics, stderr


class Store:
    """The `raw/` folder of a suite's output directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.raw = self.root / "raw"

    def path(self, key: UnitKey) -> Path:
        return self.raw / key.filename()

    def has(self, key: UnitKey) -> bool:
        return self.path(key).is_file()

    def save(
        self,
        key: UnitKey,
        lm_eval_results: dict[str, Any],
        lengths: dict[str, Any] | None = None,
        model_name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        data = {k: v for k, v in lm_eval_results.items() if k != "samples"}
        data["jinstruct"] = {
            "key": key.as_dict(),
            "model_name": model_name,
            "lengths": lengths,
            **(extra or {}),
        }
        target = self.path(key)
        with atomic_write(target) as tmp:
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        return target

    def records(self) -> list[Record]:
        out = []
        if not self.raw.is_dir():
            return out
        for path in sorted(self.raw.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                info = data["jinstruct"]
                key = UnitKey.from_dict(info["key"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}: not a jinstruct leaderboard result ({err}); delete it or move it out of {self.raw}"
                ) from err
            task_results = data.get("results", {}).get(key.task, {})
            metrics, stderr = split_metrics(task_results)
            out.append(Record(key, path, metrics, stderr, info.get("lengths"), info.get("model_name"), data))
        return out


def parse_model_args(model_args: Any) -> dict[str, Any]:
    """lm-eval's model_args (a "k=v,k=v" string or a dict) as a dict, values typed as lm-eval types them."""
    from lm_eval.utils import simple_parse_args_string  # not at import: rendering needs no lm-eval

    if isinstance(model_args, dict):
        return dict(model_args)
    return simple_parse_args_string(str(model_args)) if model_args else {}


def task_slice(data: dict[str, Any], task: str) -> dict[str, Any]:
    """The part of a multi-task lm-eval results dict that concerns one task (samples included)."""
    sub = {k: v for k, v in data.items() if k != "samples"}
    sub["results"] = {task: data["results"][task]}
    for section in ("configs", "versions", "higher_is_better", "n-samples", "n-shot", "samples"):
        if isinstance(data.get(section), dict) and task in data[section]:
            sub[section] = {task: data[section][task]}
    sub.pop("group_subtasks", None)
    sub.pop("groups", None)
    return sub


def gather(paths: list[str | Path], store: Store) -> list[Path]:
    """Copy existing lm-eval result JSONs (from `lm_eval --output_path`, or our own raw files) into the
    store, one file per task, keyed like a fresh run. Returns the files written."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                q for q in p.rglob("*.json") if q.name.startswith("results") or q.parent.name == "raw"
            )
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"--gather {p}: no such file or folder")
    written = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{f}: not JSON ({err}); pass lm-eval results files (results_*.json)") from err
        if not isinstance(data, dict) or "results" not in data:
            raise ValueError(f"{f}: no `results` entry; pass lm-eval results files (results_*.json)")
        if "jinstruct" in data:  # already one of ours: keep its key and lengths
            key = UnitKey.from_dict(data["jinstruct"]["key"])
            target = store.path(key)
            if f.resolve() != target.resolve():
                written.append(
                    store.save(
                        key, data, data["jinstruct"].get("lengths"), data["jinstruct"].get("model_name")
                    )
                )
            continue
        cfg = data.get("config") or {}
        margs = parse_model_args(cfg.get("model_args"))
        model = margs.get("pretrained") or cfg.get("model_name") or cfg.get("model") or "unknown"
        adapter = str(margs["peft"]) if margs.get("peft") else None
        harness = f"lm_eval=={data.get('lm_eval_version', 'unknown')};gathered"
        n_shot = data.get("n-shot") or {}
        limit = cfg.get("limit")
        for task in data["results"]:
            if task not in n_shot:
                continue  # a group's aggregate row, not a task
            sub = task_slice(data, task)
            key = UnitKey(
                str(model), adapter, task, int(n_shot[task]), harness, int(limit) if limit else None
            )
            written.append(store.save(key, sub, None, None, {"gathered_from": str(f)}))
    return written
