"""The JP Eval groups (ja_eval_v02 ... ja_eval_v06) and the `jp_eval` leaderboard suite over all eight
tasks. The four generation tasks (JSQuAD, JAQKET v2, XLSum-ja, MGSM) come from a parallel branch: these
tests pass once both branches are merged."""

from __future__ import annotations

import pytest

from jinstruct.harness_tasks.catalog import task_catalog
from jinstruct.leaderboard.config import load_suite, parse_models
from jinstruct.leaderboard.render import write_all
from jinstruct.leaderboard.store import Store, UnitKey, harness_version
from jinstruct.leaderboard.table import build

# The reference's suite: family -> (shots, metric the leaderboard shows).
SHOTS = {
    "jcommonsenseqa": 3, "jnli": 3, "marcja": 3, "jsquad": 2, "jaqket2": 1, "xlsum": 1, "xwinograd": 0, "mgsm": 5,
}  # fmt: skip
METRIC = {"jsquad": "exact_match", "jaqket2": "exact_match", "xlsum": "rouge2"}


def expected_members(v: str) -> list[tuple[str, int]]:
    gen = "00" if v == "02" else v
    jnli = f"jnli_v{v}" if v in ("02", "03") else f"jnli13_v{v}"
    names = [f"jcommonsenseqa_v{v}", jnli, f"marcja_v{v}", f"jsquad_v{v}", f"jaqket2_v{v}", f"xlsum_v{gen}",
             "xwinograd_ja", f"mgsm_v{gen}"]  # fmt: skip
    return list(zip(names, SHOTS.values()))


@pytest.mark.parametrize("v", ["02", "03", "04", "05", "06"])
def test_group_members_exist_with_the_reference_shots(v):
    catalog = task_catalog()
    group = catalog.groups[f"ja_eval_v{v}"]
    assert group.prompt_version == f"0.{v[1]}"
    assert list(group.members) == expected_members(v)
    missing = [name for name, _ in group.members if name not in catalog.tasks]
    assert not missing, f"tasks not defined (is the generation-task branch merged?): {missing}"
    assert [catalog.task(name).family for name, _ in group.members] == list(SHOTS)
    for name, _ in group.members:
        family = catalog.task(name).family
        assert METRIC.get(family, "acc") in catalog.task(name).metrics, name


@pytest.mark.parametrize("v", ["02", "03", "04", "05", "06"])
def test_jp_eval_suite_runs_what_the_group_runs(v):
    spec = parse_models(
        {"models": [{"name": "m", "base_model": "org/m", "prompt_version": f"0.{v[1]}"}]}
    ).models[0]
    assert load_suite("jp_eval").units(spec) == expected_members(v)


def test_leaderboard_writes_the_eight_columns_and_their_average(tmp_path):
    suite = load_suite("jp_eval")
    cfg = parse_models({"models": [{"name": "base-lm", "base_model": "org/base", "prompt_version": "0.2"}]})
    # Made-up figures as lm-eval reports them: acc as a fraction, exact_match and rouge2 in percent.
    raw = {"jcommonsenseqa": 0.8, "jnli": 0.5, "marcja": 0.9, "jsquad": 70.0, "jaqket2": 60.0, "xlsum": 10.0,
           "xwinograd": 0.7, "mgsm": 0.1}  # fmt: skip
    shown = {f: v * 100 if f not in METRIC else v for f, v in raw.items()}
    catalog = task_catalog()
    store = Store(tmp_path / "store")
    for task, shots in suite.units(cfg.models[0]):
        family = catalog.task(task).family
        metric = METRIC.get(family, "acc")
        key = UnitKey("org/base", None, task, shots, harness_version())
        store.save(
            key, {"results": {task: {f"{metric},none": raw[family]}}, "n-shot": {task: shots}}, None, None
        )
    lb = build(store.records(), suite, cfg)
    (row,) = [r for r in lb.rows if r.kind == "model"]
    values = [row.cells[c.key].value for c in suite.columns]
    assert values[1:] == pytest.approx(list(shown.values()))
    assert values[0] == pytest.approx(sum(shown.values()) / 8)
    assert any("jnli-1.1-0.2" in n and "xwinograd_ja" in n for n in lb.notes)  # the reference tasks, named
    md = write_all(lb, tmp_path / "out")["md"].read_text(encoding="utf-8")
    assert f"| base-lm | 0.2 | {sum(shown.values()) / 8:.2f} | 80.00 |" in md
