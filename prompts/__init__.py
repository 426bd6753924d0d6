"""Prompt templates as data, shared by the harness tasks and the trainer.

The strings live in the YAML files beside this module; this module only loads and fills them.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

_VERSION_FIELDS = (
    "description",
    "text",
    "sep",
    "instruction",
    "system_prompt",
    "choice_item",
    "choice_sep",
    "shot_target",
    "warning",
)
# Keys of a family in jglue.yaml that are not prompt versions: where the doc's fields are.
_FAMILY_FIELDS = ("doc_fields", "choice_fields")
SHOT_TARGETS = ("answer", "index")


@cache
def _load(name: str) -> dict[str, Any]:
    with resources.files(__package__).joinpath(name).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def fill(template: str, fields: Mapping[str, str]) -> str:
    """`template.format(**fields)` for the fields given; every other `{name}` stays a placeholder.

    Literal braces stay escaped, so the result can be formatted again with the remaining fields.
    """
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name in fields and not spec and not conversion:
            out.append(str(fields[name]).replace("{", "{{").replace("}", "}}"))
        else:
            out.append(
                "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
    return "".join(out)


@dataclass(frozen=True)
class FewShotPrompt:
    """One prompt version of a JGLUE task, with its label words filled in.

    `text` keeps the doc fields as placeholders; `doc_fields` maps them to the doc's columns. Tasks
    whose choices differ per doc (JCommonsenseQA) name the choice columns in `choice_fields`, and
    `text` shows them as `{choices}`: each rendered by `choice_item` ({index}, {choice}), joined by
    `choice_sep`. `shot_target` is what a shot shows after its text: the gold `answer` (label word or
    choice text) or the gold `index` as a digit (JCommonsenseQA 0.2, which still scores the texts).
    """

    family: str
    version: str
    labels: tuple[str, ...]
    description: str
    text: str
    sep: str
    doc_fields: Mapping[str, str] = field(default_factory=dict)
    choice_fields: tuple[str, ...] = ()
    choice_item: str = "{choice}"
    choice_sep: str = "\n"
    shot_target: str = "answer"
    warning: str | None = None

    def doc_to_text(self, **fields: str) -> str:
        return self.text.format(**fields)

    def format_choices(self, choices: Sequence[str]) -> str:
        return self.choice_sep.join(self.choice_item.format(index=i, choice=c) for i, c in enumerate(choices))

    def choices_of(self, doc: Mapping[str, Any]) -> list[str]:
        """The choice texts of a doc, for tasks with per-doc choices."""
        return [doc[name] for name in self.choice_fields]

    def render(self, doc: Mapping[str, Any]) -> str:
        """doc_to_text for a dataset row: the doc's columns put into `text`."""
        fields = {name: doc[column] for name, column in self.doc_fields.items()}
        if self.choice_fields:
            fields["choices"] = self.format_choices(self.choices_of(doc))
        return self.doc_to_text(**fields)


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
    return sorted(v for v in _load("jglue.yaml")[family] if v not in _FAMILY_FIELDS)


def jglue_prompt(family: str, version: str, labels: tuple[str, ...] = ()) -> FewShotPrompt:
    """Return prompt `version` ("0.2" ...) of `family` ("jnli", "marcja", "jcommonsenseqa") for these
    label words (none for tasks with per-doc choices).

    The description and instruction are filled completely; `text` keeps the doc fields for `doc_to_text`.
    """
    data = _load("jglue.yaml")
    if family not in data or version not in data[family] or version in _FAMILY_FIELDS:
        known = {f: jglue_versions(f) for f, v in data.items() if isinstance(v, dict)}
        raise KeyError(f"no prompt {family} {version} in prompts/jglue.yaml; known: {known}")
    spec = _resolve_version(data[family], version)
    unknown = set(spec) - set(_VERSION_FIELDS)
    if unknown:
        raise ValueError(f"prompts/jglue.yaml {family} {version}: unknown keys {sorted(unknown)}")
    shot_target = spec.get("shot_target", "answer")
    if shot_target not in SHOT_TARGETS:
        raise ValueError(f"prompts/jglue.yaml {family} {version}: shot_target must be one of {SHOT_TARGETS}")
    fields: dict[str, str] = {f"label{i}": word for i, word in enumerate(labels)}
    fields["labels_nl"] = "\n".join(labels)
    fields["system_prompt"] = spec.get("system_prompt", "")
    fields["instruction"] = fill(spec.get("instruction", ""), fields)
    return FewShotPrompt(
        family=family,
        version=version,
        labels=tuple(labels),
        description=spec["description"].format(**fields),
        text=fill(spec["text"], fields),
        sep=spec["sep"],
        doc_fields=dict(data[family].get("doc_fields") or {}),
        choice_fields=tuple(data[family].get("choice_fields") or ()),
        choice_item=spec.get("choice_item", "{choice}"),
        choice_sep=spec.get("choice_sep", "\n"),
        shot_target=shot_target,
        warning=spec.get("warning"),
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
