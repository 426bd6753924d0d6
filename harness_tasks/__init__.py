"""lm-evaluation-harness task YAMLs and their helpers. `tasks_dir()` is the folder for --include_path."""

from __future__ import annotations

from pathlib import Path


def tasks_dir() -> Path:
    """The installed folder holding every jinstruct task YAML (lm_eval --include_path)."""
    return Path(__file__).resolve().parent
