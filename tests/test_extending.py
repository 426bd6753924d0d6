"""The README's "How to extend" recipes, done as a maintainer would: a new task, a new training preset,
a new leaderboard suite. (A new prompt version: tests/test_task_catalog.py adds a throwaway 0.7.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import jinstruct.training.config as train_config
from jinstruct.leaderboard.config import load_suite, parse_models
from jinstruct.leaderboard.render import to_markdown
from jinstruct.leaderboard.store import Store, UnitKey, harness_version
from jinstruct.leaderboard.table import build

# Original rows written for this test.
TOY_ROWS = [
    {"question": "富士山は日本で一番高い山ですか。", "label": 0},
    {"question": "魚は木に登りますか。", "label": 1},
    {"question": "雪は冷たいですか。", "label": 0},
]


@pytest.fixture()
def toy_task(tmp_path, ship_tasks) -> Path:
    """A new task as data: one lm-eval YAML whose metadata names its family, prompt version and language."""
    folder = tmp_path / "toyqa"
    folder.mkdir()
    data = folder / "toyqa.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TOY_ROWS), encoding="utf-8")
    (folder / "toyqa_v03.yaml").write_text(
        "task: toyqa_v03\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "質問：{{question}}\\n答え："\n'
        'doc_to_choice: ["はい", "いいえ"]\n'
        "doc_to_target: label\n"
        "metric_list:\n  - metric: acc\n"
        'metadata:\n  version: 1.0\n  family: toyqa\n  prompt_version: "0.3"\n  language: ja\n',
        encoding="utf-8",
    )
    ship_tasks(folder)
    return folder


def test_a_new_task_runs_in_lm_eval_and_shows_up_in_a_suite(toy_task, tmp_path):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(toy_task)], include_defaults=False)
    task = manager.load(["toyqa_v03"])["tasks"]["toyqa_v03"]
    doc = task.eval_docs[0]
    assert task.fewshot_context(doc, 0) == "質問：富士山は日本で一番高い山ですか。\n答え："
    assert task.doc_to_choice(doc) == ["はい", "いいえ"]

    suite_file = tmp_path / "toy.yaml"
    suite_file.write_text(
        "name: toy\ntitle: Toy QA\ncaption: Accuracy on the toy questions.\n"
        "columns:\n  - {family: toyqa, title: ToyQA, shots: [0], metric: acc, scale: 100}\n",
        encoding="utf-8",
    )
    suite = load_suite(str(suite_file))
    cfg = parse_models({"models": [{"name": "m", "base_model": "org/m", "prompt_version": "0.3"}]})
    assert suite.units(cfg.models[0]) == [("toyqa_v03", 0)]  # the family resolved through the catalog
    store = Store(tmp_path / "out")
    key = UnitKey("org/m", None, "toyqa_v03", 0, harness_version())
    store.save(key, {"results": {"toyqa_v03": {"acc,none": 2 / 3}}, "n-shot": {"toyqa_v03": 0}})
    md = to_markdown(build(store.records(), suite, cfg, reference=None))
    assert "| m | 0.3 | 66.7 |" in md and "Accuracy on the toy questions." in md


def test_a_new_training_preset_is_a_yaml_file(tmp_path, monkeypatch):
    shutil.copytree(Path(train_config.__file__).parent / "presets", tmp_path / "presets")
    (tmp_path / "presets" / "tiny-neox.yaml").write_text(
        "model: org/tiny-neox\ndata: rows.jsonl\nseq_len: 512\nlora_r: 8\nlora_target_modules: [query_key_value]\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(train_config, "_resource", lambda *parts: tmp_path.joinpath(*parts))
    assert "tiny-neox" in train_config.available_presets()
    assert "tiny-neox" in train_config.build_parser().format_help()
    cfg = train_config.config_from_args(["--preset", "tiny-neox", "--lora-r", "16"])  # flags still win
    assert (cfg.preset, cfg.model, cfg.seq_len, cfg.lora_r) == ("tiny-neox", "org/tiny-neox", 512, 16)
    assert cfg.lora_target_modules == ["query_key_value"]
