"""A real leaderboard run: stock lm-eval `hf` on the tiny model (base + a LoRA adapter), the jinstruct tasks
on the bundled demo data, then the writers, skip, resume after an interruption, markers, gathering."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from jinstruct.leaderboard import run_leaderboard
from jinstruct.leaderboard.config import load_suite, parse_models
from jinstruct.leaderboard.store import Store, UnitKey

DATA = Path(__file__).resolve().parents[1] / "jinstruct" / "demo_data"
METADATA = {"data_dir": str(DATA / "JGLUE"), "vqa_path": str(DATA / "ja-vg-vqa" / "question_answers.json")}
TRAIN_SEQ_LEN = 48
MODEL_MAX = 200


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    f = tmp_path_factory.mktemp("suite") / "small.yaml"
    f.write_text(
        "name: small\ncolumns:\n"
        "  - {family: jnli, title: JNLI, shots: [1], metric: acc, scale: 100}\n"
        "  - {family: marcja, title: MARC-ja, shots: [1], metric: acc, scale: 100}\n"
        "  - {family: vqa, title: VQA ppl, shots: [0], metric: ppl_paper, lower_is_better: true}\n",
        encoding="utf-8",
    )
    return load_suite(str(f))


@pytest.fixture(scope="module")
def adapter(tiny_lm, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model, with a trainer-style training_config.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_lm),
        LoraConfig(r=4, lora_alpha=16, target_modules=["query_key_value"], init_lora_weights=False),
    )
    model.save_pretrained(out)
    (out / "training_config.json").write_text(json.dumps({"seq_len": TRAIN_SEQ_LEN, "lora_r": 4}))
    return out


def _models(tiny_lm: Path, adapter: Path, limit: int = 4):
    return parse_models(
        {
            "models": [
                {
                    "name": "tiny-base",
                    "base_model": str(tiny_lm),
                    "backend": "hf",
                    "batch_size": 8,
                    "model_args": {"max_length": MODEL_MAX},
                },
                {
                    "name": "tiny-tuned",
                    "base_model": str(tiny_lm),
                    "adapter": str(adapter),
                    "backend": "hf",
                    "batch_size": 8,
                },
            ],
            "metadata": METADATA,
            "limit": limit,
        },
        "test models",
    )


@pytest.fixture(scope="module")
def scored(tiny_lm, adapter, suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("lb")
    cfg = _models(tiny_lm, adapter)
    lb, paths = run_leaderboard(cfg, suite, out, banner="test banner")
    return cfg, out, lb, paths


def test_outputs_written(scored):
    cfg, out, lb, paths = scored
    raws = sorted((out / "raw").glob("*.json"))
    assert len(raws) == 6  # 2 models x (jnli 1-shot, marcja 1-shot, vqa 0-shot)
    for p in raws:
        data = json.loads(p.read_text())
        assert set(data["results"]) == {data["jinstruct"]["key"]["task"]}
        assert data["config"]["model_args"].startswith("pretrained=")
        assert "samples" not in data
    md = paths["md"].read_text()
    assert "| tiny-base |" in md and "| tiny-tuned |" in md and "test banner" in md
    # reference rows from the installed package data, on this suite's percent scale
    assert "| _Stormy (Instruct CALM) (paper)_ | 0.2 | 45.9 | 46.8 | 29.9 |" in md
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and "src='http" not in html  # self-contained
    assert {p.name for p in out.glob("chart_*.png")} == {
        "chart_jnli.png",
        "chart_marc_ja.png",
        "chart_vqa_ppl.png",
    }
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    assert {r["task"] for r in rows if r["kind"] == "model"} == {"jnli_v03", "marcja_v03", "vqa_ppl"}


def test_values_match_the_raw_lm_eval_results(scored):
    cfg, out, lb, _ = scored
    base_row = next(r for r in lb.rows if r.name == "tiny-base")
    col = lb.suite.columns[0]
    raw = next(
        json.loads(p.read_text())
        for p in (out / "raw").glob("*.json")
        if json.loads(p.read_text())["jinstruct"]["key"]["task"] == "jnli_v03"
        and json.loads(p.read_text())["jinstruct"]["model_name"] == "tiny-base"
    )
    assert base_row.cells[col.key].value == pytest.approx(raw["results"]["jnli_v03"]["acc,none"] * 100)
    assert base_row.cells[col.key].stderr == pytest.approx(
        raw["results"]["jnli_v03"]["acc_stderr,none"] * 100
    )
    vqa = lb.suite.columns[2]
    assert base_row.cells[vqa.key].value > 1  # a perplexity, unscaled


def test_markers_are_computed_from_lengths(scored):
    _, out, lb, _ = scored
    by = {(r.name, c.title): r.cells[c.key] for r in lb.rows if r.kind == "model" for c in lb.suite.columns}
    records = {(r.model_name, r.key.task): r for r in Store(out).records()}
    for (model, _title), cell in by.items():
        rec = records[(model, cell.task)]
        lengths = rec.lengths
        assert lengths["n"] == 4 or cell.task == "vqa_ppl"
        if model == "tiny-tuned":
            # `*` only for the adapter, from its training_config.json
            assert lengths["train_seq_len"] == TRAIN_SEQ_LEN
            assert ("*" in cell.markers) == (lengths["max_tokens"] > TRAIN_SEQ_LEN)
        else:
            assert lengths["train_seq_len"] is None and "*" not in cell.markers
            assert lengths["model_max_length"] == MODEL_MAX
        assert ("†" in cell.markers) == (lengths["max_tokens"] > lengths["model_max_length"])
    # The 0.3 JNLI prompt is long: over the adapter's 48 tokens, and over the base's 200-token window.
    assert "*" in by[("tiny-tuned", "JNLI")].markers
    assert "†" in by[("tiny-base", "JNLI")].markers
    assert "†" not in by[("tiny-tuned", "JNLI")].markers  # the tuned entry keeps the 2048 window


def test_verdict_compares_the_pair(scored):
    _, _, lb, _ = scored
    assert len(lb.verdicts) == 1
    v = lb.verdicts[0]
    assert v.base == "tiny-base" and v.tuned == "tiny-tuned"
    assert len(v.lines) == 3 and v.lines[0].startswith("JNLI 1-shot:")
    assert "VQA ppl" in v.lines[2] and "×" in v.lines[2]


def test_rerun_skips_everything(scored, suite, monkeypatch):
    cfg, out, _, _ = scored
    import lm_eval

    from jinstruct.leaderboard import runner

    def boom(*a, **k):
        raise AssertionError("nothing should be scored again")

    monkeypatch.setattr(lm_eval, "simple_evaluate", boom)
    monkeypatch.setattr(runner, "load_lm", boom)
    report = runner.run(cfg, suite, Store(out))
    assert report.scored == [] and len(report.skipped) == 6


def test_interrupted_run_resumes(tiny_lm, adapter, suite, tmp_path, monkeypatch):
    import lm_eval

    cfg = _models(tiny_lm, adapter, limit=2)
    cfg.models = cfg.models[:1]
    calls = []
    real = lm_eval.simple_evaluate

    def interrupted(*a, **k):
        calls.append((tuple(k["tasks"]), k["num_fewshot"]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lm_eval, "simple_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_leaderboard(cfg, suite, tmp_path)
    saved = {json.loads(p.read_text())["jinstruct"]["key"]["task"] for p in (tmp_path / "raw").glob("*.json")}
    assert saved == {"jnli_v03", "marcja_v03"}  # the first call (1-shot) finished and was saved
    assert not list((tmp_path / "raw").glob(".tmp-*"))  # no half-written file

    calls.clear()
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda *a, **k: calls.append(k["tasks"]) or real(*a, **k))
    lb, _ = run_leaderboard(cfg, suite, tmp_path)
    assert calls == [["vqa_ppl"]]  # only what was missing
    assert all(lb.rows[0].cells[c.key].value is not None for c in suite.columns)


def test_gather_existing_lm_eval_results(scored, suite, tmp_path):
    _, out, lb, _ = scored
    # What `lm_eval --output_path` writes is the same dict without our `jinstruct` entry.
    lm_eval_dir = tmp_path / "lm_eval_out" / "tiny"
    lm_eval_dir.mkdir(parents=True)
    for i, p in enumerate(sorted((out / "raw").glob("*.json"))):
        data = json.loads(p.read_text())
        if data["jinstruct"]["model_name"] != "tiny-tuned":
            continue
        data.pop("jinstruct")
        (lm_eval_dir / f"results_2026-01-0{i}.json").write_text(json.dumps(data))
    gathered_out = tmp_path / "gathered"
    glb, paths = run_leaderboard(None, suite, gathered_out, gather_from=[tmp_path / "lm_eval_out"])
    rows = [r for r in glb.rows if r.kind == "model"]
    assert len(rows) == 1 and rows[0].spec.adapter is not None and rows[0].spec.prompt_version == "0.3"
    tuned = next(r for r in lb.rows if r.name == "tiny-tuned")
    for col in suite.columns:
        assert rows[0].cells[col.key].value == pytest.approx(tuned.cells[col.key].value)
    assert any(n.startswith("markers could not be computed for ") for n in glb.notes)
    assert not any(n.startswith("markers could not") for n in lb.notes)
    keys = [r.key for r in Store(gathered_out).records()]
    assert all(isinstance(k, UnitKey) and k.harness.endswith(";gathered") and k.limit == 4 for k in keys)


def test_gather_rejects_non_results(tmp_path, suite):
    bad = tmp_path / "results_x.json"
    bad.write_text(json.dumps({"something": 1}))
    with pytest.raises(ValueError, match="no `results` entry"):
        run_leaderboard(None, suite, tmp_path / "o", gather_from=[bad])


def test_corrupt_raw_file_is_named(scored, suite, tmp_path):
    _, out, _, _ = scored
    copy = tmp_path / "copy"
    shutil.copytree(out / "raw", copy / "raw")
    (copy / "raw" / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        Store(copy).records()
