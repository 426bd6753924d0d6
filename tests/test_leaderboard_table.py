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
        _save(
            store,
            "org/lora",
            "jnli_v02",
            shots,
            {"acc,none": 0.60, "acc_stderr,none": 0.01},
            {"n": 10, "over_train_seq_len": 3 if shots == 3 else 0, "over_model_max": 0},
        )
        # +1 point with 5-point stderrs: within noise
        _save(store, None, "marcja_v03", shots, {"acc,none": 0.50, "acc_stderr,none": 0.05})
        _save(store, "org/lora", "marcja_v02", shots, {"acc,none": 0.51, "acc_stderr,none": 0.05})
    _save(
        store,
        None,
        "vqa_ppl",
        0,
        {"ppl_paper,none": 250.0, "ppl_paper_stderr,none": "N/A", "n_over_length,none": 2},
    )
    _save(store, "org/lora", "vqa_ppl", 0, {"ppl_paper,none": 25.0, "n_over_length,none": 0})
    return build(store.records(), load_suite("paper"), CFG)


def test_cells_are_scaled_with_stderr_and_markers(board):
    suite = board.suite
    tuned = next(r for r in board.rows if r.name == "tuned")
    base = next(r for r in board.rows if r.name == "base")
    j3 = suite.columns[2]
    assert tuned.cells[j3.key].value == pytest.approx(0.6) and tuned.cells[j3.key].stderr == pytest.approx(
        0.01
    )
    assert fmt_cell(tuned.cells[j3.key], j3) == "0.600 ± 0.010*"  # 3 of 10 over the training length
    assert fmt_cell(tuned.cells[suite.columns[0].key], suite.columns[0]) == "0.600 ± 0.010"
    vqa = suite.columns[6]
    assert fmt_cell(base.cells[vqa.key], vqa) == "250.0†"  # vqa_ppl's own over-length count
    assert tuned.cells[vqa.key].markers == ""


def test_verdict_separates_real_moves_from_noise(board):
    (v,) = board.verdicts
    assert v.base == "base" and v.tuned == "tuned"
    assert "better on 4 (JNLI 1-shot, JNLI 2-shot, JNLI 3-shot, VQA ppl)" in v.summary
    assert "no clear change on 3 (MARC-ja 1-shot, MARC-ja 2-shot, MARC-ja 3-shot)" in v.summary
    assert "different JGLUE prompt versions (0.3 vs 0.2)" in v.summary
    assert v.lines[0] == "JNLI 1-shot: 0.400 → 0.600 (+0.200, beyond noise: 14.1 combined standard errors)"
    assert v.lines[-1] == "VQA ppl: 250.0 → 25.0 (10.00× lower (better))"


def test_reference_rows_and_writers(board, tmp_path):
    refs = [r for r in board.rows if r.kind == "reference"]
    assert {r.name for r in refs} >= {"Stormy (Instruct CALM) (paper)", "CALM (paper)"}
    stormy = next(r for r in refs if r.name.startswith("Stormy"))
    assert stormy.cells[board.suite.columns[6].key].value == 29.9
    paths = write_all(board, tmp_path / "out", banner="smoke")
    md = paths["md"].read_text(encoding="utf-8")
    assert "| _Stormy (Instruct CALM) (paper)_ | 0.2 | 0.459 | 0.508 |" in md and "> smoke" in md
    assert "Accuracy (a fraction, as the paper prints it) ± standard error" in md and "VQA ppl is" in md
    assert "tuned, JNLI 3-shot (jnli_v02): 3 of 10 longer than the training sequence length" in md
    markers = md.split("## Markers")[1].split("##")[0]
    assert "(paper)" not in markers  # the paper's markers are as printed, with no counts to list
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    j3 = next(r for r in rows if r["model"] == "tuned" and r["column"] == "JNLI 3-shot")
    assert j3["markers"] == "*" and j3["n_over_train_seq_len"] == "3" and j3["task"] == "jnli_v02"


def test_missing_results_are_listed_not_invented(tmp_path):
    lb = build([], load_suite("paper"), CFG, reference=None)
    assert all(c.value is None for r in lb.rows for c in r.cells.values())
    assert lb.verdicts == [] and any(n.startswith("not computed yet: base JNLI 1-shot") for n in lb.notes)


def test_paper_rows_carry_every_table2_cell_with_markers():
    lb = build([], load_suite("paper"), CFG)
    refs = {r.name: r for r in lb.rows if r.kind == "reference"}
    assert list(refs) == [
        "Stormy (Instruct CALM) (paper)",
        "CALM (paper)",
        "Instruct LLaMA 7B (paper)",
        "LLaMA 7B (paper)",
        "Instruct LLaMA 13B (paper)",
        "LLaMA 13B (paper)",
    ]
    cols = lb.suite.columns
    assert all(refs[name].cells.get(c.key) is not None for name in refs for c in cols)  # 6 x 7 cells

    def row(name):
        return [fmt_cell(refs[name].cells[c.key], c) for c in cols]

    assert row("Stormy (Instruct CALM) (paper)") == [
        "0.459",
        "0.508",
        "0.475",
        "0.468",
        "0.828*",
        "0.784*",
        "29.9",
    ]
    assert row("Instruct LLaMA 7B (paper)") == [
        "0.398*",
        "0.454*",
        "0.479*†",
        "0.795*",
        "0.829*",
        "0.847*",
        "68.5",
    ]
    assert row("LLaMA 7B (paper)")[2] == "0.303†" and row("LLaMA 7B (paper)")[6] == "1499.0"
    # The 13B row's MARC-ja and VQA cells are a reading of a garbled source, and say so.
    assert row("Instruct LLaMA 13B (paper)") == [
        "0.302*",
        "0.302*",
        "0.302*†",
        "0.859*‡",
        "0.855*‡",
        "0.855*‡",
        "38.8‡",
    ]
    assert row("LLaMA 13B (paper)") == ["0.316", "0.281", "0.263†", "0.855", "0.855", "0.855", "971.5"]
    assert any(n.startswith("‡ Instruct LLaMA 13B, MARC-ja and VQA: a reading") for n in lb.reference_notes)


def test_percent_suite_scales_the_paper_rows_too(tmp_path):
    f = tmp_path / "pct.yaml"
    f.write_text(
        "name: pct\ncolumns:\n  - {family: jnli, title: JNLI, shots: [1], metric: acc, scale: 100}\n"
    )
    lb = build([], load_suite(str(f)), CFG)
    stormy = next(r for r in lb.rows if r.name.startswith("Stormy"))
    assert stormy.cells[lb.suite.columns[0].key].value == pytest.approx(45.9)


def test_verdict_quotes_the_paper_for_one_of_its_pairs(tmp_path):
    cfg = parse_models(
        {
            "models": [
                {"name": "calm", "base_model": "cyberagent/open-calm-7b", "prompt_version": "0.3"},
                # A local copy of the paper's adapter counts as the same adapter.
                {
                    "name": "stormy",
                    "base_model": "cyberagent/open-calm-7b",
                    "adapter": "/models/stormy-7b-10ep",
                    "prompt_version": "0.2",
                },
            ]
        }
    )
    store = Store(tmp_path)
    for adapter, acc in ((None, 0.30), ("/models/stormy-7b-10ep", 0.45)):
        key = UnitKey(
            "cyberagent/open-calm-7b",
            adapter,
            "jnli_v03" if adapter is None else "jnli_v02",
            1,
            harness_version(),
        )
        store.save(key, {"results": {key.task: {"acc,none": acc}}, "n-shot": {key.task: 1}}, None, None)
    lb = build(store.records(), load_suite("paper"), cfg)
    (v,) = lb.verdicts
    assert v.paper is not None and v.paper.startswith(
        "The paper, same pair (Stormy (Instruct CALM) (paper) vs CALM"
    )
    assert "improved JNLI" in v.paper and "not MARC-ja" in v.paper
    assert v.paper in write_all(lb, tmp_path / "out")["md"].read_text(encoding="utf-8")
    # Not one of the paper's pairs: no quotation.
    board_cfg = build(store.records(), load_suite("paper"), CFG)
    assert all(v.paper is None for v in board_cfg.verdicts)


def test_missing_reference_file_is_an_error_not_an_empty_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="--reference none"):
        build([], load_suite("paper"), CFG, reference=tmp_path / "nope.yaml")


def test_prose_comes_from_the_suite_and_reference_rows_from_their_kind(board):
    from jinstruct.leaderboard.config import _suite_from_dict
    from jinstruct.leaderboard.render import to_html, to_markdown

    mine = _suite_from_dict(
        "mine",
        {
            "columns": [{"family": "jnli", "shots": [1]}],
            "extra": [{"family": "jnli", "shots": [3], "metric": "macro_f1"}],
        },
        "t",
    )
    md = to_markdown(build([], mine, CFG))
    assert "VQA" not in md and "the JGLUE prompt" not in md and "Tokenizer-independent" not in md
    assert "_Italic_ rows are published figures (arXiv:2309.03412, Table II)" in md
    assert "| _CALM (paper)_ | 0.3 | 0.3 |" in md
    own = _suite_from_dict(
        "own",
        {
            "columns": [{"family": "jnli", "shots": [1]}],
            "caption": "Ours {italic}x{italic}.",
            "extra_caption": "More of ours.",
        },
        "t",
    )
    assert "Ours _x_." in to_markdown(build([], own, CFG, reference=None))
    page = to_html(board, [])
    assert page.count('<tr class="ref">') == 6  # the paper's six rows (it has none of the extra figures)
    assert "<td>Stormy (Instruct CALM) (paper)</td>" in page and "<td>_" not in page
