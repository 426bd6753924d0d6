"""The bundled demo data and the demo's recipe (the full `jinstruct demo` run is not a unit test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jinstruct import demo, demo_texts

DATA = demo_texts.DATA_DIR


def test_bundled_files_are_what_the_generator_makes():
    assert demo_texts.check() == []


def test_readme_says_the_texts_are_original():
    text = (DATA / "README.md").read_text(encoding="utf-8")
    assert "written for the project" in text and "no sentence" in text.lower()


@pytest.mark.parametrize("family", ["jnli-v1.1", "marc_ja-v1.1"])
def test_jglue_mini_copy_follows_the_github_layout(family):
    for split, n in (("train", 60), ("valid", 40)):
        path = DATA / "JGLUE" / "datasets" / family / f"{split}-v1.1.json"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == n
        if family.startswith("jnli"):
            assert {r["label"] for r in rows} == {"entailment", "contradiction", "neutral"}
            assert all(r["sentence1"] and r["sentence2"] for r in rows)
        else:
            assert {r["label"] for r in rows} == {"positive", "negative"}
            assert all(r["review_id"] and r["sentence"] for r in rows)


def test_vqa_pairs_never_appear_in_the_instructions():
    images = json.loads((DATA / "ja-vg-vqa" / "question_answers.json").read_text(encoding="utf-8"))
    pairs = {(qa["question"], qa["answer"]) for img in images for qa in img["qas"]}
    assert len(pairs) == sum(len(img["qas"]) for img in images) >= 60
    rows = [
        json.loads(line) for line in (DATA / "instructions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert all(set(r) == {"instruction", "input", "output"} and r["output"] for r in rows)
    assert not pairs & {(r["instruction"], r["output"]) for r in rows}


def test_corpus_has_no_question_answer_template():
    corpus = (DATA / "corpus.txt").read_text(encoding="utf-8")
    assert "### " not in corpus and "？" not in corpus


def test_demo_training_fields_are_trainer_fields():
    from jinstruct.training.config import TrainConfig, apply_overrides

    fields = {"model": "m", "data": "d", "output": "o", **demo.DemoConfig().train_fields()}
    cfg = apply_overrides(TrainConfig(), fields, "demo")
    cfg.validate()
    assert cfg.deepspeed == "zero2" and cfg.precision == "fp32"


def test_demo_models_pair_base_and_tuned(tmp_path):
    cfg = demo.models_config(tmp_path / "base", tmp_path / "adapter", demo.DemoConfig())
    (pair,) = cfg.pairs()
    assert pair[0].adapter is None and pair[1].adapter == str(tmp_path / "adapter")
    assert Path(cfg.metadata["data_dir"], "datasets", "jnli-v1.1", "valid-v1.1.json").is_file()
    assert Path(cfg.metadata["vqa_path"]).is_file()


def test_build_base_makes_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = demo.DemoConfig(
        vocab_size=600, hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=2, pretrain_batch=2
    )
    out = demo.build_base(tmp_path / "base", cfg)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 32 and tok.model_max_length == cfg.max_positions
    assert tok.decode(tok("公園の犬")["input_ids"]) == "公園の犬"  # byte-level: Japanese round-trips
    info = json.loads((out / "demo_base.json").read_text())
    assert info["corpus_tokens"] > 1000


def test_thread_choice(monkeypatch):
    assert demo.choose_threads(3) == (3, "as asked")
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    monkeypatch.setattr(demo.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert demo.choose_threads()[0] == 2
    monkeypatch.setattr(demo.os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    assert demo.choose_threads()[0] == 1
