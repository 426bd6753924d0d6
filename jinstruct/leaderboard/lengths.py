"""The facts behind the paper's markers, measured rather than typed.

`*`: some evaluated examples are longer than the sequence length the adapter was trained with (read
from the adapter's saved training config). `†`: some exceed the model's maximum length, so the
harness had to truncate them. Both are counted here from the requests lm-eval actually sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# Files a trainer may leave beside the adapter, and the keys that hold its training sequence length.
_CONFIG_FILES = (
    "training_config.json",
    "training_config.yaml",
    "train_config.json",
    "train_config.yaml",
    "resolved_config.json",
    "resolved_config.yaml",
    "jinstruct_train.json",
    "jinstruct_train.yaml",
    "config.yaml",
)
_SEQ_KEYS = ("seq_len", "max_seq_len", "sequence_length", "cutoff_len", "max_length", "model_max_length")


def _find_seq_len(obj: Any) -> int | None:
    if isinstance(obj, dict):
        for key in _SEQ_KEYS:
            if isinstance(obj.get(key), int) and not isinstance(obj.get(key), bool):
                return int(obj[key])
        for value in obj.values():
            found = _find_seq_len(value)
            if found:
                return found
    return None


def adapter_train_seq_len(adapter: str | None) -> tuple[int | None, str | None]:
    """(training sequence length, the file it was read from) for a local adapter folder, else (None, None)."""
    if not adapter:
        return None, None
    folder = Path(adapter)
    if not folder.is_dir():
        return None, None
    for name in _CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            obj = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError):
            continue
        seq = _find_seq_len(obj)
        if seq:
            return seq, str(path)
    return None, None


def request_texts(sample: dict[str, Any]) -> list[str]:
    """The full text of each request of one logged sample: context + continuation, or the rolling text."""
    texts = []
    for args in sample.get("arguments", []):
        if isinstance(args, dict):  # some lm-eval versions log {"gen_args_0": {"arg_0": ..}}
            args = list(args.values())
        if isinstance(args, (list, tuple)) and args and all(isinstance(a, str) for a in args[:2]):
            texts.append("".join(a for a in args[:2] if isinstance(a, str)))
    return texts


def measure(
    samples: list[dict[str, Any]],
    tokenizer,
    model_max_length: int | None,
    train_seq_len: int | None,
) -> dict[str, Any]:
    """Token lengths of every evaluated example (its longest request), counted with the model's tokenizer."""
    lengths = []
    for sample in samples:
        texts = request_texts(sample)
        if not texts:
            continue
        # One example is as long as its longest request (each choice is a separate request).
        lengths.append(max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts))
    out: dict[str, Any] = {
        "n": len(lengths),
        "max_tokens": max(lengths) if lengths else None,
        "mean_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None,
        "model_max_length": model_max_length,
        "over_model_max": sum(n > model_max_length for n in lengths) if model_max_length else None,
        "train_seq_len": train_seq_len,
        "over_train_seq_len": sum(n > train_seq_len for n in lengths) if train_seq_len else None,
        "counted_with": getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
    }
    return out
