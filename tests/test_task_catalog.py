"""The task catalog: read from the task YAMLs, the one source of task names for the leaderboard and the
demo; adding a prompt version is a prompts/jglue.yaml entry plus task YAMLs, and nothing else."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import jinstruct.prompts as prompts_mod
from jinstruct.harness_tasks import tasks_dir
from jinstruct.harness_tasks.catalog import load_catalog, task_catalog
from jinstruct.leaderboard.config import ConfigError, load_suite, parse_models, task_name
from jinstruct.leaderboard.render import write_all
from jinstruct.leaderboard.store import Store, UnitKey, harness_version
from jinstruct.leaderboard.table import build

FIXTURE_JGLUE = Path(__file__).parent / "fixtures" / "JGLUE"


def test_catalog_is_the_folder_lm_eval_indexes():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    catalog = task_catalog()
    assert set(catalog.tasks) == set(manager.all_subtasks)
    assert set(catalog.groups) == set(manager.all_groups)


def test_task_metadata():
    catalog = task_catalog()
    jnli = catalog.task("jnli13_v03")
    assert (jnli.family, jnli.prompt_version, jnli.reference_task) == ("jnli", "0.3", "jnli-1.3-0.3")
    assert jnli.label_words == ("含意", "矛盾", "中立") and jnli.language == "ja" and jnli.num_fewshot == 3
    assert jnli.metrics == (
        "acc",
        "acc_norm",
        "balanced_acc",
        "macro_f1",
        "mcc",
    )  # from the included template
    assert catalog.task("jnli_v02").label_words == ("entailment", "contradiction", "neutral")
    jcqa = catalog.task("jcommonsenseqa_v021")
    assert jcqa.prompt_version == "0.2.1" and jcqa.label_words is None and jcqa.metrics == ("acc", "acc_norm")
    assert catalog.task("vqa_ppl_en").language == "en" and catalog.task("vqa_ppl").family == "vqa"
    xw = catalog.task("xwinograd_ja")
    assert xw.prompt_version is None and xw.reference_task == "xwinograd_ja" and xw.metrics == ("acc",)
    assert catalog.prompt_versions("jcommonsenseqa") == ["0.1", "0.2", "0.2.1", "0.3", "0.4", "0.5", "0.6"]
    # Every JGLUE-family task names its reference task and prompt version.
    for t in catalog.tasks.values():
        if t.family in ("jnli", "marcja", "jcommonsenseqa"):
            assert t.prompt_version and t.reference_task and t.reference_task.endswith(t.prompt_version)


def test_prompt_version_groups_decide_the_task():
    assert [task_name("jnli", v) for v in ("0.2", "0.3", "0.4")] == ["jnli_v02", "jnli_v03", "jnli13_v04"]
    assert task_name("jcommonsenseqa", "0.2.1") == "jcommonsenseqa_v021"  # no group: the one task with it
    assert task_name("xwinograd", "0.5") == "xwinograd_ja"  # no prompt: serves every version
    with pytest.raises(ConfigError, match="unknown task family 'nope'"):
        task_name("nope", "0.3")
    with pytest.raises(ConfigError, match=r"jcommonsenseqa has prompt versions 0.1, 0.2, 0.2.1"):
        task_name("jcommonsenseqa", "0.9")


def test_ambiguous_version_without_a_group_says_how_to_fix(tmp_path):
    only_tasks = load_catalog((tasks_dir() / "jglue",))
    only_tasks.groups.clear()
    with pytest.raises(LookupError, match=r"ambiguous \(jnli13_v02, jnli_v02\).*group YAML"):
        only_tasks.task_for("jnli", "0.2")


V07_DESCRIPTION = "テスト用の説明です。\n\n"


@pytest.fixture()
def throwaway_v07(tmp_path, monkeypatch, ship_tasks):
    """Prompt version 0.7 as a maintainer adds one: an entry in prompts/jglue.yaml (a copy of 0.3 with
    another description) and one task YAML per family, in a folder of their own."""
    data = copy.deepcopy(prompts_mod._load("jglue.yaml"))
    for family in ("jnli", "marcja"):
        data[family]["0.7"] = {**data[family]["0.3"], "description": V07_DESCRIPTION}
    real_load = prompts_mod._load
    monkeypatch.setattr(prompts_mod, "_load", lambda name: data if name == "jglue.yaml" else real_load(name))
    template = tasks_dir() / "jglue" / "_jglue_template_yaml"
    for task, family, labels, ref in (
        ("jnli13_v07", "jnli", '["含意", "矛盾", "中立"]', "jnli-1.3-0.7"),
        ("marcja_v07", "marcja", '["ポジティブ", "ネガティブ"]', "marc_ja-1.1-0.7"),
    ):
        (tmp_path / f"{task}.yaml").write_text(
            f"include: {template}\ntask: {task}\ndoc_to_choice: {labels}\nmetadata:\n  version: 1.0\n"
            f'  family: {family}\n  prompt_version: "0.7"\n  fewshot_draw: plain\n  reference_task: {ref}\n',
            encoding="utf-8",
        )
    ship_tasks(tmp_path)
    return tmp_path


def test_a_new_prompt_version_shows_up_in_the_leaderboard(throwaway_v07, tmp_path_factory):
    from lm_eval.tasks import TaskManager

    # The task runs with the new prompt.
    manager = TaskManager(
        include_path=[str(tasks_dir()), str(throwaway_v07)], include_defaults=False,
        metadata={"data_dir": str(FIXTURE_JGLUE)},
    )  # fmt: skip
    task = manager.load(["jnli13_v07"])["tasks"]["jnli13_v07"]
    assert task.fewshot_context(task.eval_docs[0], 1).startswith(V07_DESCRIPTION + "### 指示:\n")
    # The leaderboard knows it: a models file may say 0.7, and the suite's columns resolve to it.
    cfg = parse_models({"models": [{"name": "m", "base_model": "org/m", "prompt_version": "0.7"}]})
    suite = load_suite("paper")
    assert {t for t, _ in suite.units(cfg.models[0])} == {"jnli13_v07", "marcja_v07", "vqa_ppl"}
    store = Store(tmp_path_factory.mktemp("store"))
    for t, shots in suite.units(cfg.models[0]):
        key = UnitKey("org/m", None, t, shots, harness_version())
        store.save(
            key, {"results": {t: {"acc,none": 0.5, "ppl_paper,none": 9.0}}, "n-shot": {t: shots}}, None, None
        )
    for lb in (build(store.records(), suite, cfg), build(store.records(), suite, None)):
        (row,) = [r for r in lb.rows if r.kind == "model"]
        assert row.note == "0.7"  # gathered results: the prompt version read from the task names
        assert (
            row.cells[suite.columns[0].key].task == "jnli13_v07"
            and row.cells[suite.columns[0].key].value == 0.5  # the paper suite prints fractions
        )
        assert any("jnli-1.3-0.7" in n for n in lb.notes)
    out = write_all(build(store.records(), suite, cfg), tmp_path_factory.mktemp("out"))
    assert "| m | 0.7 | 0.500 " in out["md"].read_text(encoding="utf-8")


def test_group_entries_carry_their_shots_into_lm_eval(tmp_path):
    """The ja_eval groups give each member its shots as `{task: ..., num_fewshot: k}` entries."""
    from lm_eval.tasks import TaskManager

    (tmp_path / "mini_group.yaml").write_text(
        "group: mini_group\ntask:\n  - {task: jnli13_v03, num_fewshot: 2}\n  - {task: marcja_v03, num_fewshot: 1}\n"
        'metadata:\n  version: 1.0\n  prompt_version: "0.3"\n',
        encoding="utf-8",
    )
    manager = TaskManager(
        include_path=[str(tasks_dir()), str(tmp_path)], include_defaults=False,
        metadata={"data_dir": str(FIXTURE_JGLUE)},
    )  # fmt: skip
    loaded = manager.load(["mini_group"])["tasks"]
    assert {name: t.config.num_fewshot for name, t in loaded.items()} == {"jnli13_v03": 2, "marcja_v03": 1}
    assert load_catalog((tasks_dir(), tmp_path)).groups["mini_group"].members == (
        ("jnli13_v03", 2),
        ("marcja_v03", 1),
    )
