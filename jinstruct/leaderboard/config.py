"""What a leaderboard run is made of: the models (a small YAML file) and the suite (columns as data)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from jinstruct.fields import coerce_fields
from jinstruct.names import check_keys, did_you_mean

_TOP_FIELDS = {"models", "metadata", "limit", "suite"}
# Task metadata our tasks read (harness_tasks/): a misspelt key would silently fall back to a default.
METADATA_KEYS = {
    "data_dir",
    "train_file",
    "validation_file",
    "jglue_version",
    "vqa_path",
    "vqa_cache_dir",
    "vqa_url",
    "vqa_sha256",
    "vqa_sample",
    "vqa_seed",
    "vqa_overlength",
    "vqa_tokenizer",
    "vqa_max_length",
    "xwinograd_path",
    "mgsm_dir",
    "jsquad_train_file",
    "jsquad_validation_file",
    "jaqket_dir",
    "jaqket_train_file",
    "jaqket_validation_file",
    "jaqket_num_contexts",
    "xlsum_dir",
    "xlsum_train_file",
    "xlsum_test_file",
    "jp_eval_tokenizer",
    "jp_eval_max_length",
    "dynamic_max_length",
    "max_gen_toks",
}
_SUITE_FIELDS = {"name", "title", "columns", "extra", "caption", "extra_caption"}
# A suite's name becomes a folder under results/: one path component, no "..".
_SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ConfigError(ValueError):
    """A models file or suite that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class ModelSpec:
    """One row of the leaderboard: a base model and, for a tuned model, its LoRA adapter."""

    name: str
    base_model: str
    adapter: str | None = None
    prompt_version: str = "0.3"
    vqa_language: str = "ja"
    dtype: str = "float32"
    batch_size: int | str = 1
    backend: str = "auto"  # auto: hf-fast when registered and working, else stock hf
    model_args: dict[str, Any] = field(default_factory=dict)  # extra lm-eval model args
    base: str | None = None  # name of the entry this one is compared with in the verdict
    train_seq_len: int | None = None  # overrides what the adapter's saved config says
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def lm_eval_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"pretrained": self.base_model, "dtype": self.dtype}
        if self.adapter:
            args["peft"] = self.adapter
        args.update(self.model_args)
        return args

    def model_args_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.lm_eval_args().items())


@dataclass(frozen=True)
class Column:
    """A task family at one shot count, with the metric to show."""

    family: str | None
    task: str | None
    title: str
    shots: int
    metric: str
    scale: float = 1.0
    lower_is_better: bool = False
    decimals: int = 1
    average: bool = False  # the plain mean of the suite's other columns (needs no run of its own)

    @property
    def key(self) -> str:
        return f"{self.title}|{self.shots}"

    @property
    def heading(self) -> str:
        return self.title if self.family == "vqa" or self.shots == 0 else f"{self.title} {self.shots}-shot"

    def task_for(self, model: ModelSpec) -> str:
        return self.task or task_name(self.family or "", model.prompt_version, model.vqa_language)


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    columns: tuple[Column, ...]
    extra: tuple[Column, ...] = ()
    # Prose under the main table and the extra one; `{italic}` and `{source}` are filled in by the writers.
    caption: str | None = None
    extra_caption: str | None = None

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.extra

    def units(self, model: ModelSpec) -> list[tuple[str, int]]:
        """Distinct (task, shots) runs this model needs, in column order."""
        seen: dict[tuple[str, int], None] = {}
        for col in self.all_columns:
            if not col.average:
                seen.setdefault((col.task_for(model), col.shots), None)
        return list(seen)


def task_name(family: str, prompt_version: str, vqa_language: str = "ja") -> str:
    """The jinstruct task a model of this prompt version runs for a family, from the task catalog
    (harness_tasks/catalog.py: the task YAMLs' metadata and the prompt-version groups)."""
    from jinstruct.harness_tasks.catalog import task_catalog

    try:
        return task_catalog().task_for(family, str(prompt_version), language=vqa_language)
    except LookupError as err:
        raise ConfigError(f"{err.args[0]}; or give the column a fixed `task:`") from None


def _column(raw: dict[str, Any], shots: int, where: str) -> Column:
    values = coerce_fields(Column, {**raw, "shots": shots}, where, ConfigError, null_is_default=True)
    if not values.get("family") and not values.get("task") and not values.get("average"):
        raise ConfigError(
            f"{where}: a column needs `family:` (a task family: jnli, marcja, vqa, ...), `task:` or `average: true`"
        )
    values.setdefault("family", None)
    values.setdefault("task", None)
    values["title"] = values.get("title") or values["task"] or values["family"] or "Average"
    values.setdefault("metric", "acc")
    return Column(**values)


def _suite_from_dict(name: str, raw: dict[str, Any], where: str) -> Suite:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: suite {name!r} must be a mapping with `columns:`")
    check_keys(raw, _SUITE_FIELDS, f"{where} suite {name!r}", ConfigError)
    if not _SUITE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{where}: suite name {name!r} must be one folder name (letters, digits, '.', '_', '-'; "
            "no '/' or '..'): results go to results/<name>/"
        )
    cols, extra = [], []
    for target, key in ((cols, "columns"), (extra, "extra")):
        for i, c in enumerate(raw.get(key) or []):
            if not isinstance(c, dict):
                raise ConfigError(f"{where} suite {name!r} {key}[{i}] is not a mapping")
            for k in c.get("shots", [0]):
                target.append(_column(c, k, f"{where} suite {name!r} {key}[{i}]"))
    if not cols:
        raise ConfigError(f"{where}: suite {name!r} has no columns")
    prose = {k: " ".join(str(raw[k]).split()) for k in ("caption", "extra_caption") if raw.get(k)}
    return Suite(
        name=name, title=str(raw.get("title", name)), columns=tuple(cols), extra=tuple(extra), **prose
    )


def builtin_suites() -> dict[str, Suite]:
    with resources.files(__package__).joinpath("suites.yaml").open(encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return {
        name: _suite_from_dict(name, spec, "jinstruct/leaderboard/suites.yaml") for name, spec in raw.items()
    }


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name (`paper`), or a YAML file holding one suite (`name:`, `columns:`)."""
    suites = builtin_suites()
    if name_or_path in suites:
        return suites[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"no suite {name_or_path!r}{did_you_mean(name_or_path, suites)}: built-in suites are "
            f"{sorted(suites)}, and no such file"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML (UTF-8): {err}") from None
    return _suite_from_dict(
        str(raw.get("name", path.stem)) if isinstance(raw, dict) else path.stem, raw, str(path)
    )


@dataclass
class RunConfig:
    """A models file: the models plus what every lm-eval call gets."""

    models: list[ModelSpec]
    metadata: dict[str, Any] = field(default_factory=dict)  # lm-eval task metadata (data_dir, vqa_path, ...)
    limit: int | None = None
    suite: str | None = None
    source: str = "<memory>"

    def by_name(self) -> dict[str, ModelSpec]:
        return {m.name: m for m in self.models}

    def pairs(self) -> list[tuple[ModelSpec, ModelSpec]]:
        """(base, tuned) pairs for the verdict: `base:` when given, else the entry with the same base
        model and no adapter."""
        names = self.by_name()
        out = []
        for m in self.models:
            if not m.adapter and not m.base:
                continue
            if m.base:
                if m.base not in names:
                    raise ConfigError(
                        f"{self.source}: model {m.name!r} has base: {m.base!r}, which is not a model name here"
                    )
                out.append((names[m.base], m))
                continue
            bases = [b for b in self.models if b.base_model == m.base_model and not b.adapter]
            if bases:
                out.append((bases[0], m))
        return out


def parse_models(raw: Any, source: str = "<memory>") -> RunConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or not raw["models"]:
        raise ConfigError(
            f"{source}: expected a mapping with a non-empty `models:` list (see README, Leaderboard)"
        )
    check_keys(raw, _TOP_FIELDS, source, ConfigError)
    if not isinstance(raw.get("metadata") or {}, dict):
        raise ConfigError(f"{source}: `metadata:` must be a mapping of task metadata keys")
    check_keys(raw.get("metadata") or {}, METADATA_KEYS, f"{source}: metadata", ConfigError)
    models = []
    for i, entry in enumerate(raw["models"]):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a mapping; write `- name: ...` with `base_model: ...`")
        # null means the default; an empty adapter or train_seq_len means none
        values = coerce_fields(ModelSpec, entry, where, ConfigError, null_is_default=True)
        if not entry.get("base_model"):
            raise ConfigError(f"{where} has no `base_model:` (a hub id or a local folder)")
        values["name"] = values.get("name") or str(entry.get("adapter") or entry["base_model"])
        values["adapter"] = values.get("adapter") or None
        values["train_seq_len"] = values.get("train_seq_len") or None
        spec = ModelSpec(**values)
        task_name("jnli", spec.prompt_version)  # validates the version early
        if spec.vqa_language not in ("ja", "en"):
            raise ConfigError(f"{where}: vqa_language must be ja or en, not {spec.vqa_language!r}")
        models.append(spec)
    names = [m.name for m in models]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"{source}: model names must be unique; repeated: {dups} (set `name:`)")
    limit = raw.get("limit")
    cfg = RunConfig(
        models=models,
        metadata=dict(raw.get("metadata") or {}),
        limit=int(limit) if limit is not None else None,
        suite=raw.get("suite"),
        source=source,
    )
    cfg.pairs()  # validates `base:` references
    return cfg


def load_models(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"models file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return parse_models(raw, str(path))
