"""Shared fixtures: everything is made here, offline, with fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"

# Original sentences written for these tests (not taken from any dataset).
TOKENIZER_TEXTS = [
    "男性がギターを弾いています。人が楽器を演奏しています。",
    "少年が自転車に乗っています。子供が乗り物に乗っています。",
    "猫が窓辺で眠っている。犬が公園を走っている。",
    "この製品はとても使いやすく、毎日使っています。",
    "届いた商品は壊れていて、がっかりしました。",
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。",
    "### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n### 入力:\n前提：\n仮説：\n\n### 応答:\n",
    "含意 矛盾 中立 entailment contradiction neutral positive negative ポジティブ ネガティブ",
    "以下の質問に答える返答を書いてください。\n\n### 質問:\n\n### 返答:\n",
    "Write a response to answer the following question. The quick brown fox jumps over the lazy dog.",
] * 4


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A tiny GPT-NeoX with a byte-level BPE tokenizer, saved with safetensors."""
    from jinstruct.tiny import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("tiny_neox"), TOKENIZER_TEXTS, arch="gpt_neox", seed=0)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny Llama with the same kind of tokenizer."""
    from jinstruct.tiny import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("tiny_llama"), TOKENIZER_TEXTS, arch="llama", seed=0)


@pytest.fixture()
def ship_tasks(monkeypatch):
    """A function that makes a test's task folders part of the task catalog, as if they shipped."""

    def ship(*folders: Path):
        import jinstruct.harness_tasks.catalog as catalog_mod
        import jinstruct.leaderboard.table as table_mod
        from jinstruct.harness_tasks import tasks_dir

        catalog = catalog_mod.load_catalog((tasks_dir(), *folders))
        monkeypatch.setattr(catalog_mod, "task_catalog", lambda: catalog)
        monkeypatch.setattr(table_mod, "task_catalog", lambda: catalog)
        return catalog

    return ship
