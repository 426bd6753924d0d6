"""The product stands alone: no file of the repository points at the development workspace's shared folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "runs", ".cache"}
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = ("../" + "shared", "/work/" + "shared", "shared/" + "spec", "shared/" + "data")


def _files():
    for folder, dirs, names in os.walk(REPO):
        here = Path(folder)
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIP and not d.endswith(".egg-info") and here / d != REPO / "results" / "demo"
        ]
        yield from (here / name for name in names)


def test_no_file_refers_to_the_shared_workspace():
    hits = []
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        hits += [f"{path.relative_to(REPO)}: {word}" for word in FORBIDDEN if word in text]
    assert hits == []


def test_docs_cover_what_the_project_reproduces():
    docs = {p.name for p in (REPO / "docs").glob("*.md")}
    assert {"jglue-tasks.md", "vqa-perplexity.md", "training-recipe.md", "paper-results.md"} <= docs
