"""Table logic on hand-made lm-eval results: verdicts, noise, markers, reference rows, writers."""

from __future__ import annotations

import csv

import pytest

from jinstruct.leaderboard.config import load_suite, parse_models
from jinstruct.leaderboard.render import fmt_cell, write_all
from jinstruct.leaderboard.store import Store, UnitKey, harness_version
from jinstruct.leaderboard.table import build

CFG = parse_models(
    {
        "models": [
            {"name": "base", "base_model": "org/base", "prompt_version": "0.3"},
            {"name": "tuned", "base_model": "org/base", "adapter": "org/lora", "prompt_version": "0.2"},
        ]
    }
)


def _save(store: Store, adapter, task, shots, metrics: dict, lengths=None):
    key = UnitKey("org/base", adapter, task, shots, harness_version())
    store.save(key, {"results": {task: metrics}, "n-shot": {task: shots}}, lengths, None)


@pytest.fixture()
def board(tmp_path):
    store = Store(tmp_path)
    for shots in (1, 2, 3):
        _save(store, None, "jnli_v03", shots, {"acc,none": 0.40, "acc_stderr,none": 0.01})
        # +20 points with 1-point stderrs: beyond noise
        _save(store, "org/lora", "jnli_v02", shots, {"acc,none": 0.60, "acc_stderr,none": 0.01},
              {"n": 10, "over_train_seq_len": 3 if shots == 3 else 0, "over_model_max": 0})
        # +1 point with 5-point stderrs: within noise
        _save(store, None, "marcja_v03", shots, {"acc,none": 0.50, "acc_stderr,none": 0.05})
        _save(store, "org/lora", "marcja_v02", shots, {"acc,none": 0.51, "acc_stderr,none": 0.05})
    _save(store, None, "vqa_ppl", 0, {"ppl_paper,none": 250.0, "ppl_paper_stderr,none": "N/A", "n_over_length,none": 2})
    _save(store, "org/lora", "vqa_ppl", 0, {"ppl_paper,none": 25.0, "n_over_length,none": 0})
    return build(store.records(), load_suite("paper"), CFG)


def test_cells_are_scaled_with_stderr_and_markers(board):
    suite = board.suite
    tuned = next(r for r in board.rows if r.name == "tuned")
    base = next(r for r in board.rows if r.name == "base")
    j3 = suite.columns[2]
    assert tuned.cells[j3.key].value == pytest.approx(60.0) and tuned.cells[j3.key].stderr == pytest.approx(1.0)
    assert fmt_cell(tuned.cells[j3.key], j3) == "60.0 ± 1.0*"  # 3 of 10 over the training length
    assert fmt_cell(tuned.cells[suite.columns[0].key], suite.columns[0]) == "60.0 ± 1.0"
    vqa = suite.columns[6]
    assert fmt_cell(base.cells[vqa.key], vqa) == "250.0†"  # vqa_ppl's own over-length count
    assert tuned.cells[vqa.key].markers == ""


def test_verdict_separates_real_moves_from_noise(board):
    (v,) = board.verdicts
    assert v.base == "base" and v.tuned == "tuned"
    assert "better on 4 (JNLI 1-shot, JNLI 2-shot, JNLI 3-shot, VQA ppl)" in v.summary
    assert "no clear change on 3 (MARC-ja 1-shot, MARC-ja 2-shot, MARC-ja 3-shot)" in v.summary
    assert "different JGLUE prompt versions (0.3 vs 0.2)" in v.summary
    assert v.lines[0] == "JNLI 1-shot: 40.0 → 60.0 (+20.0 points, beyond noise: 14.1 combined standard errors)"
    assert v.lines[-1] == "VQA ppl: 250.0 → 25.0 (10.00× lower (better))"


def test_reference_rows_and_writers(board, tmp_path):
    refs = [r for r in board.rows if r.kind == "reference"]
    assert {r.name for r in refs} >= {"Stormy 7B (paper)", "CALM 7B (paper)"}
    stormy = next(r for r in refs if r.name.startswith("Stormy"))
    assert stormy.cells[board.suite.columns[6].key].value == 29.9
    paths = write_all(board, tmp_path / "out", banner="smoke")
    md = paths["md"].read_text(encoding="utf-8")
    assert "| _Stormy 7B (paper)_ | 0.2 |" in md and "> smoke" in md
    assert "tuned, JNLI 3-shot (jnli_v02): 3 of 10 longer than the training sequence length" in md
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    j3 = next(r for r in rows if r["model"] == "tuned" and r["column"] == "JNLI 3-shot")
    assert j3["markers"] == "*" and j3["n_over_train_seq_len"] == "3" and j3["task"] == "jnli_v02"


def test_missing_results_are_listed_not_invented(tmp_path):
    lb = build([], load_suite("paper"), CFG, reference=None)
    assert all(c.value is None for r in lb.rows for c in r.cells.values())
    assert lb.verdicts == [] and any(n.startswith("not computed yet: base JNLI 1-shot") for n in lb.notes)
