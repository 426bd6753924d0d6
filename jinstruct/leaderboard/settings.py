"""Everything that can change a stored number, as data: the part of a result's key beyond its name.

A unit on disk is reused only when these settings are the same: the harness and task definitions,
the lm-eval model args (dtype included), the requested backend and its tokenization mode, the task
metadata, and the identity of every local file or folder they point at (the adapter's weights by
content, data files by content, a local base model's files by size and modification time).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinstruct.leaderboard.config import ModelSpec
from jinstruct.leaderboard.store import harness_version

# Base model weights can be tens of GB: their files are identified by size and mtime, not read.
_STAT_ONLY = {"base_model"}


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def path_identity(value: str, content: bool = True) -> str | None:
    """A digest of a local file or folder (every file under it), or None when `value` is no local path."""
    path = Path(value).expanduser()
    try:
        if not path.exists():
            return None
    except OSError:  # a hub id or a string too long to be a path
        return None
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    )
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        part = (
            _file_digest(str(f), st.st_size, st.st_mtime_ns) if content else f"{st.st_size}:{st.st_mtime_ns}"
        )
        h.update(f"{f.relative_to(path) if f != path else f.name}={part};".encode())
    return h.hexdigest()[:16]


def unit_settings(spec: ModelSpec, metadata: dict[str, Any]) -> dict[str, Any]:
    """What a (model, task, shots) result of this spec depends on besides its name."""
    model_args = {k: str(v) for k, v in spec.lm_eval_args().items()}
    files: dict[str, str] = {}
    named = [("base_model", spec.base_model), ("adapter", spec.adapter or "")]
    named += [(f"metadata.{k}", v) for k, v in sorted(metadata.items()) if isinstance(v, str)]
    if not metadata.get("data_dir"):  # the JGLUE tasks' fallback
        named.append(("env.JGLUE_DIR", os.environ.get("JGLUE_DIR", "")))
    for name, value in named:
        if value and (digest := path_identity(value, content=name not in _STAT_ONLY)) is not None:
            files[name] = digest
    return {
        "harness": harness_version(),
        "model_args": model_args,
        "backend": spec.backend,
        "tokenization": str(spec.model_args.get("tokenization", "lm_eval")),
        "metadata": json.loads(json.dumps(metadata, sort_keys=True, default=str)),
        "files": files,
    }


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """'model_args.dtype: 'float32' -> 'bfloat16'; files.adapter changed' (old settings -> new)."""
    if not old:
        return "no settings recorded (written by an older jinstruct or gathered)"
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    what = "content changed" if key == "files" else f"{a.get(sub)!r} -> {b.get(sub)!r}"
                    out.append(f"{key}.{sub}: {what}")
        else:
            out.append(f"{key}: {a!r} -> {b!r}")
    return "; ".join(out)
