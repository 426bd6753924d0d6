"""The `jp_eval` suite as data, and an `average` column: the plain mean of a row's displayed figures."""

from __future__ import annotations

import pytest

from jinstruct.leaderboard.config import load_suite, parse_models
from jinstruct.leaderboard.render import write_all
from jinstruct.leaderboard.store import Store, UnitKey, harness_version
from jinstruct.leaderboard.table import build


def test_jp_eval_columns_are_the_reference_leaderboard():
    suite = load_suite("jp_eval")
    assert [c.heading for c in suite.columns] == [
        "Average", "JCommonsenseQA 3-shot", "JNLI 3-shot", "MARC-ja 3-shot", "JSQuAD 2-shot",
        "JAQKET v2 1-shot", "XLSum-ja 1-shot", "XWinograd-ja", "MGSM-ja 5-shot",
    ]  # fmt: skip
    by_title = {c.title: c for c in suite.columns}
    # acc x 100; exact_match and rouge2 are already percentages in the reference's results.
    assert [
        (by_title[t].metric, by_title[t].scale) for t in ("JCommonsenseQA", "XWinograd-ja", "MGSM-ja")
    ] == [("acc", 100.0)] * 3
    assert (by_title["JSQuAD"].metric, by_title["JSQuAD"].scale) == ("exact_match", 1.0)
    assert (by_title["XLSum-ja"].metric, by_title["XLSum-ja"].scale) == ("rouge2", 1.0)
    assert by_title["Average"].average


def test_average_column_is_the_plain_mean_once_every_figure_is_there(tmp_path):
    suite_file = tmp_path / "mini.yaml"
    suite_file.write_text(
        "name: mini\ncolumns:\n  - {average: true, decimals: 2}\n"
        "  - {family: jnli, title: JNLI, shots: [3], metric: acc, scale: 100}\n"
        "  - {family: xwinograd, title: XWinograd-ja, shots: [0], metric: acc, scale: 100}\n"
        "  - {task: some_gen_task, title: Gen, shots: [1], metric: exact_match}\n",
        encoding="utf-8",
    )
    suite = load_suite(str(suite_file))
    cfg = parse_models(
        {"models": [{"name": "a", "base_model": "org/a"}, {"name": "b", "base_model": "org/b"}]}
    )
    assert suite.units(cfg.models[0]) == [("jnli_v03", 3), ("xwinograd_ja", 0), ("some_gen_task", 1)]
    store = Store(tmp_path / "store")
    figures = {
        "jnli_v03": {"acc,none": 0.5},
        "xwinograd_ja": {"acc,none": 0.6},
        "some_gen_task": {"exact_match,none": 31.0},
    }
    for model in ("org/a", "org/b"):
        for task, shots in suite.units(cfg.models[0]):
            if model == "org/b" and task == "some_gen_task":
                continue  # b is missing one figure
            key = UnitKey(model, None, task, shots, harness_version())
            store.save(key, {"results": {task: figures[task]}, "n-shot": {task: shots}}, None, None)
    lb = build(store.records(), suite, cfg)
    a, b = (r for r in lb.rows if r.kind == "model")
    avg = suite.columns[0]
    assert a.cells[avg.key].value == pytest.approx((50.0 + 60.0 + 31.0) / 3)
    assert b.cells[avg.key].value is None  # never a mean over fewer figures
    assert any(n.startswith("not computed yet:") and "b Average" in n for n in lb.notes)
    md = write_all(lb, tmp_path / "out")["md"].read_text(encoding="utf-8")
    assert "| a | 0.3 | 47.00 |" in md and "| b | 0.3 | – |" in md
