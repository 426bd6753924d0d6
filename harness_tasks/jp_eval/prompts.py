"""The generation prompts of prompts/jp_eval.yaml, one frozen object per (family, version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

FAMILIES = ("jsquad", "jsquad12", "jaqket2", "xlsum", "mgsm")
_FIELDS = {
    "description",
    "text",
    "fewshot_sep",
    "stop",
    "passage",
    "passage_join",
    "article_prompt",
    "summary_prompt",
    "truncation_replace",
}


@cache
def _load() -> dict[str, Any]:
    with resources.files("jinstruct.prompts").joinpath("jp_eval.yaml").open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass(frozen=True)
class GenerationPrompt:
    """One prompt version: context = description + fewshot_sep.join(shot texts + targets) + fewshot_sep + text."""

    family: str
    version: str
    description: str
    text: str
    fewshot_sep: str
    stop: str
    passage: str = ""
    passage_join: str = ""
    article_prompt: str = ""
    summary_prompt: str = ""
    truncation_replace: dict[str, str] = field(default_factory=dict)

    def render(self, **fields: Any) -> str:
        return self.text.format(**fields)

    def context(self, shots: list[tuple[str, str]], query: str) -> str:
        """The reference's `fewshot_context`: shots as (text, target) pairs, then the query text."""
        if not shots:
            return self.description + query
        examples = self.fewshot_sep.join(text + target for text, target in shots)
        return self.description + examples + self.fewshot_sep + query


def _resolve(family: dict[str, Any], version: str) -> dict[str, Any]:
    spec = dict(family[version])
    derive = spec.pop("derive", None)
    if derive is None:
        return spec
    out: dict[str, Any] = {}
    for key, value in _resolve(family, derive["from"]).items():
        if isinstance(value, str):
            for old, new in derive.get("replace", {}).items():
                value = value.replace(old, new)
        out[key] = value
    return {**out, **spec}


def prompt_versions(family: str) -> list[str]:
    return sorted(_load()[family])


def generation_prompt(family: str, version: str) -> GenerationPrompt:
    data = _load()
    if family not in FAMILIES or version not in data.get(family, {}):
        known = {f: sorted(data[f]) for f in FAMILIES if f in data}
        raise KeyError(f"no prompt {family} {version} in prompts/jp_eval.yaml; known: {known}")
    spec = _resolve(data[family], version)
    unknown = set(spec) - _FIELDS
    if unknown:
        raise ValueError(f"prompts/jp_eval.yaml {family} {version}: unknown keys {sorted(unknown)}")
    return GenerationPrompt(family=family, version=version, **spec)
