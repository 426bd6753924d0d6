"""Prompt templates as data, shared by the harness tasks and the trainer.

The strings live in the YAML files beside this module; this module only loads and fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

_VERSION_FIELDS = ("description", "text", "sep", "instruction", "system_prompt")


@cache
def _load(name: str) -> dict[str, Any]:
    with resources.files(__package__).joinpath(name).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass(frozen=True)
class FewShotPrompt:
    """One prompt version of a JGLUE task, with its label words filled in."""

    family: str
    version: str
    labels: tuple[str, ...]
    description: str
    text: str
    sep: str

    def doc_to_text(self, **fields: str) -> str:
        return self.text.format(**fields)


def _resolve_version(family: dict[str, Any], version: str) -> dict[str, str]:
    spec = dict(family[version])
    derive = spec.pop("derive", None)
    if derive is None:
        return spec
    base = _resolve_version(family, derive["from"])
    out = {}
    for key, value in base.items():
        for old, new in derive.get("replace", {}).items():
            value = value.replace(old, new)
        out[key] = value
    out.update(spec)
    return out


def jglue_versions(family: str) -> list[str]:
    return sorted(_load("jglue.yaml")[family])


def jglue_prompt(family: str, version: str, labels: tuple[str, ...]) -> FewShotPrompt:
    """Return prompt `version` ("0.2" ...) of `family` ("jnli" or "marcja") for these label words.

    The description and instruction are filled completely; `text` keeps the doc fields
    ({premise}, {hypothesis}, {sentence}) for `doc_to_text`.
    """
    data = _load("jglue.yaml")
    if family not in data or version not in data[family]:
        known = {f: sorted(v) for f, v in data.items() if isinstance(v, dict)}
        raise KeyError(f"no prompt {family} {version} in prompts/jglue.yaml; known: {known}")
    spec = _resolve_version(data[family], version)
    unknown = set(spec) - set(_VERSION_FIELDS)
    if unknown:
        raise ValueError(f"prompts/jglue.yaml {family} {version}: unknown keys {sorted(unknown)}")
    fields: dict[str, str] = {f"label{i}": word for i, word in enumerate(labels)}
    fields["labels_nl"] = "\n".join(labels)
    fields["system_prompt"] = spec.get("system_prompt", "")
    fields["instruction"] = spec.get("instruction", "").format(**fields)
    # Leave the doc fields in `text` for later; fill only the prompt-level ones now.
    doc_fields = {k: "{" + k + "}" for k in ("premise", "hypothesis", "sentence")}
    return FewShotPrompt(
        family=family,
        version=version,
        labels=tuple(labels),
        description=spec["description"].format(**fields),
        text=spec["text"].format(**fields, **doc_fields),
        sep=spec["sep"],
    )


def instruction_prompt(instruction: str, input: str | None = None, language: str = "ja") -> str:
    """The paper's instruction-tuning header; the output follows it directly."""
    templates = _load("instruction.yaml")[language]
    if isinstance(input, str) and input != "":
        return templates["with_input"].format(instruction=instruction, input=input)
    return templates["without_input"].format(instruction=instruction)


def vqa_prompt(question: str, language: str = "ja") -> str:
    """The VQA perplexity prompt; the answer follows it directly."""
    return _load("vqa.yaml")[language].format(question=question)
