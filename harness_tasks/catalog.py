"""The task catalog: which tasks exist and what they are, read from the task YAMLs themselves.

The catalog is the folder: every YAML under `harness_tasks/` that defines a `task:` is an entry, so a
new YAML appears everywhere (leaderboard, demo) without a list to update. A task YAML's `metadata`
says what the task is:

    family          the task family: jnli, marcja, jcommonsenseqa, xwinograd, vqa, jsquad, ...
    prompt_version  the reference prompt version ("0.3"); absent for tasks without a prompt
    reference_task  the reference harness's name for the task (jnli-1.3-0.3)
    language        the prompt language, "ja" unless said otherwise

and the task itself gives the label words (a list `doc_to_choice`), the metric names (`metric_list`)
and the default shots (`num_fewshot`); `include:` templates are read as lm-eval reads them.

A group YAML whose `metadata.prompt_version` is set is the suite for models of that prompt version
(`ja_eval_v02` for base models). It decides which task of a family such a model runs where the
version alone does not: JNLI 0.2 exists with English (1.1) and Japanese (1.3) label words, and base
models run XLSum/MGSM 0.0 because those have no 0.2.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinstruct.harness_tasks import tasks_dir


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: str | None
    prompt_version: str | None
    reference_task: str | None
    language: str
    label_words: tuple[str, ...] | None  # fixed label words; None: per-doc choices or not multiple choice
    metrics: tuple[str, ...]
    num_fewshot: int | None
    output_type: str | None
    path: Path


@dataclass(frozen=True)
class GroupInfo:
    name: str
    members: tuple[tuple[str, int | None], ...]  # (task, shots the group runs it with)
    prompt_version: str | None
    path: Path


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def read_task(path: Path, cfg: dict[str, Any]) -> TaskInfo:
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    choices = cfg.get("doc_to_choice")
    labels = (
        tuple(choices) if isinstance(choices, list) and all(isinstance(c, str) for c in choices) else None
    )
    return TaskInfo(
        name=str(cfg["task"]),
        family=meta.get("family"),
        prompt_version=_version(meta.get("prompt_version")),
        reference_task=meta.get("reference_task"),
        language=str(meta.get("language", "ja")),
        label_words=labels,
        metrics=tuple(str(m["metric"]) for m in cfg.get("metric_list") or [] if isinstance(m, dict)),
        num_fewshot=cfg.get("num_fewshot"),
        output_type=cfg.get("output_type"),
        path=path,
    )


def read_group(path: Path, cfg: dict[str, Any]) -> GroupInfo:
    members = []
    for item in cfg["task"]:
        if isinstance(item, str):
            members.append((item, None))
        elif isinstance(item, dict) and "task" in item:
            members.append((str(item["task"]), item.get("num_fewshot")))
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return GroupInfo(str(cfg["group"]), tuple(members), _version(meta.get("prompt_version")), path)


@dataclass
class Catalog:
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    groups: dict[str, GroupInfo] = field(default_factory=dict)

    def task(self, name: str) -> TaskInfo:
        if name not in self.tasks:
            raise KeyError(f"no task {name!r} in the catalog; known: {sorted(self.tasks)}")
        return self.tasks[name]

    def families(self) -> list[str]:
        return sorted({t.family for t in self.tasks.values() if t.family})

    def prompt_versions(self, family: str) -> list[str]:
        return sorted(
            {t.prompt_version for t in self.tasks.values() if t.family == family and t.prompt_version}
        )

    def group_tasks(self, group: str) -> list[TaskInfo]:
        """The member tasks of a group that the catalog knows, in group order."""
        return [self.tasks[name] for name, _ in self.groups[group].members if name in self.tasks]

    def task_for(self, family: str, prompt_version: str, language: str = "ja") -> str:
        """The task a model of `prompt_version` runs for `family`: the group for that prompt version
        decides where it names one; else the one task of the family with that version (tasks without
        a prompt version serve every version), preferring the language asked for."""
        if family not in self.families():
            raise LookupError(f"unknown task family {family!r}; known: {', '.join(self.families())}")
        named = {
            t.name
            for group in self.groups.values() if group.prompt_version == prompt_version
            for t in self.group_tasks(group.name) if t.family == family
        }  # fmt: skip
        if len(named) == 1:
            return named.pop()
        found = [
            t for t in self.tasks.values()
            if t.family == family and t.prompt_version in (None, prompt_version)
        ]  # fmt: skip
        if len({t.language for t in found}) > 1:
            found = [t for t in found if t.language == language] or found
        if len(found) == 1:
            return found[0].name
        if not found:
            versions = ", ".join(self.prompt_versions(family)) or "none"
            raise LookupError(
                f"no {family} task for prompt version {prompt_version!r}; {family} has prompt versions {versions}"
            )
        raise LookupError(
            f"{family} prompt version {prompt_version!r} is ambiguous ({', '.join(sorted(t.name for t in found))}); "
            "name the one to use in a group YAML with metadata.prompt_version"
        )


def _yaml_files(folders: Iterable[Path]) -> list[Path]:
    return sorted(
        p for folder in folders for p in Path(folder).rglob("*.yaml") if "__pycache__" not in p.parts
    )


def load_catalog(folders: tuple[Path, ...] | None = None) -> Catalog:
    """Read every task and group YAML under `folders` (default: the installed task folder)."""
    # lm-eval's own YAML reading: `include:` merged and `!function` tags kept as text, as its index does.
    from lm_eval.tasks._yaml_loader import load_yaml

    catalog = Catalog()
    for path in _yaml_files(folders or (tasks_dir(),)):
        cfg = load_yaml(path, resolve_func=False)
        if isinstance(cfg.get("group"), str) and isinstance(cfg.get("task"), list):
            group = read_group(path, cfg)
            catalog.groups[group.name] = group
        elif isinstance(cfg.get("task"), str):
            task = read_task(path, cfg)
            if task.name in catalog.tasks:
                raise ValueError(
                    f"task {task.name!r} is defined twice: {catalog.tasks[task.name].path} and {path}"
                )
            catalog.tasks[task.name] = task
    return catalog


@cache
def task_catalog() -> Catalog:
    """The catalog of the installed task folder (read once per process)."""
    return load_catalog()


def most_common_version(names: Iterable[str], catalog: Catalog | None = None) -> str | None:
    """The prompt version most of these tasks use (the prompt family a set of results was run with)."""
    catalog = catalog or task_catalog()
    versions = [catalog.tasks[n].prompt_version for n in names if n in catalog.tasks]
    counts = Counter(v for v in versions if v)
    return counts.most_common(1)[0][0] if counts else None
