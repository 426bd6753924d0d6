"""What a causal LM's forward takes, read from its signature. A PEFT wrapper forwards its kwargs to the
transformers model inside it, so that model is the one inspected. Shared by the trainer (may rows be
packed?) and the scoring backend (cache keyword, positions, a sliced head)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping


def base_model(model):
    """The transformers model under a PEFT wrapper (the model itself when there is none)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def forward_params(model) -> Mapping[str, inspect.Parameter] | None:
    """The parameters of the (unwrapped) model's forward; None when they cannot be inspected."""
    try:
        return inspect.signature(base_model(model).forward).parameters
    except (TypeError, ValueError):
        return None


def cache_keyword(params: Mapping[str, inspect.Parameter]) -> str:
    """The keyword the forward takes its key/value cache under."""
    return "cache" if "cache" in params else "past_key_values"
