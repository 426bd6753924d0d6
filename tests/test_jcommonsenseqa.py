"""JCommonsenseQA: byte-identical contexts to the reference for every prompt version, the 0.2 trap,
per-doc choices scored as texts, and where the data comes from."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from reference_jcommonsenseqa import TASKS, reference_contexts

from jinstruct.harness_tasks import tasks_dir
from jinstruct.harness_tasks.jglue.data import JGLUEDataError


def build_task(name: str, **metadata):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
    return manager.load([name])["tasks"][name]


def synthetic_rows(n: int, seed: int, start_id: int = 0) -> list[dict]:
    """Made-up questions with five made-up answers each (not from the dataset)."""
    rnd = random.Random(seed)
    things = ["りんご", "電車", "図書館", "傘", "鉛筆", "冷蔵庫", "自転車", "時計", "靴", "机", "海", "山"]
    rows = []
    for i in range(n):
        picks = rnd.sample(things, 5)
        rows.append(
            {
                "q_id": start_id + i,
                "question": f"{rnd.choice(things)}と一緒に使うものは何？{i}",
                **{f"choice{j}": picks[j] for j in range(5)},
                "label": rnd.randrange(5),
            }
        )
    return rows


def write_jcqa(root: Path, train: list[dict], valid: list[dict]) -> Path:
    folder = root / "datasets" / "jcommonsenseqa-v1.1"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, rows in (("train", train), ("valid", valid)):
        with open(folder / f"{stem}-v1.1.json", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return root


@pytest.fixture(scope="module")
def jcqa(tmp_path_factory):
    train, valid = synthetic_rows(40, 1), synthetic_rows(53, 2, start_id=1000)
    return write_jcqa(tmp_path_factory.mktemp("jcqa"), train, valid), train, valid


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_every_context_equals_the_reference(task_name, jcqa):
    root, train, valid = jcqa
    task = build_task(task_name, data_dir=str(root))
    docs = list(task.eval_docs)
    assert [d["q_id"] for d in docs] == [d["q_id"] for d in valid]
    for k in (0, 1, 3, 5):
        assert [task.fewshot_context(d, k) for d in docs] == reference_contexts(
            TASKS[task_name], train, valid, k
        ), k
    # Five requests per doc, each the bare choice text after the context.
    doc = docs[7]
    ctx = task.fewshot_context(doc, 3)
    assert [i.args for i in task.construct_requests(doc, ctx)] == [(ctx, doc[f"choice{j}"]) for j in range(5)]


def test_the_v02_trap_shots_show_digits_but_texts_are_scored(jcqa, caplog):
    root, train, valid = jcqa
    with caplog.at_level(logging.WARNING):
        task = build_task("jcommonsenseqa_v02", data_dir=str(root))
    assert "We highly recommend using `0.2.1` instead!" in caplog.text and "#" * 100 in caplog.text
    doc = task.eval_docs[0]
    ctx = task.fewshot_context(doc, 3)
    shots = ctx.split("\n\n")[1:-1]  # description, three shots, the query
    assert len(shots) == 3
    for shot in shots:
        src = next(t for t in train if shot.startswith("質問:" + t["question"] + "\n"))
        assert shot.endswith("\n回答:" + str(src["label"]))
    assert [i.args[1] for i in task.construct_requests(doc, ctx)] == [doc[f"choice{j}"] for j in range(5)]
    # 0.2.1, the fix: the shots answer with the text.
    fixed = build_task("jcommonsenseqa_v021", data_dir=str(root))
    shot = fixed.fewshot_context(doc, 1).split("\n\n")[1]
    src = next(t for t in train if shot.startswith("質問：" + t["question"] + "\n"))
    assert shot.endswith("\n回答：" + src[f"choice{src['label']}"])


def test_scoring_picks_the_highest_choice_and_normalises_by_characters(jcqa):
    root, _, _ = jcqa
    task = build_task("jcommonsenseqa_v03", data_dir=str(root))
    doc = {**task.eval_docs[0], "label": 2}
    lls = [(-9.0, False), (-8.0, False), (-3.0, True), (-7.0, False), (-5.0, False)]
    out = task.process_results(doc, lls)
    assert out["acc"] == 1.0
    assert set(out) == {"acc", "acc_norm"}
    assert task.process_results({**doc, "label": 4}, lls)["acc"] == 0.0


def test_hub_labels_named_choiceN_are_indices(tmp_path):
    train, valid = synthetic_rows(6, 3), synthetic_rows(4, 4)
    for r in valid:
        r["label"] = f"choice{r['label']}"
    task = build_task("jcommonsenseqa_v021", data_dir=str(write_jcqa(tmp_path, train, valid)))
    assert [d["label"] for d in task.eval_docs] == [int(r["label"][-1]) for r in valid]


def test_nothing_reachable_says_what_was_tried(monkeypatch):
    monkeypatch.delenv("JGLUE_DIR", raising=False)
    with pytest.raises(JGLUEDataError) as err:
        from jinstruct.harness_tasks.jglue.data import load_jglue

        load_jglue("jcommonsenseqa")
    text = str(err.value)
    assert "shunk031/JGLUE" in text and "jcommonsenseqa-v1.1/train-v1.1.json" in text and "data_dir" in text


def test_a_bad_row_names_file_and_line(tmp_path):
    train, valid = synthetic_rows(6, 3), synthetic_rows(4, 4)
    del valid[2]["choice3"]
    root = write_jcqa(tmp_path, train, valid)
    with pytest.raises(JGLUEDataError, match=r"valid-v1.1.json, line 3: missing field 'choice3'"):
        build_task("jcommonsenseqa_v01", data_dir=str(root))


FIXTURES = Path(__file__).parent / "fixtures"


def test_log_likelihood_members_of_ja_eval_v03_run_end_to_end(tiny_lm):
    """JCommonsenseQA, JNLI, MARC-ja and XWinograd-ja of ja_eval_v03, at the group's shots, through
    lm-eval with hf-fast (reference tokenization) on the fixture copies."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import jinstruct.scoring  # noqa: F401  (registers hf-fast)
    from jinstruct.harness_tasks.catalog import task_catalog

    metadata = {
        "data_dir": str(FIXTURES / "JGLUE"),
        "xwinograd_path": str(FIXTURES / "XWinograd" / "dataset.tsv"),
    }
    shots = dict(task_catalog().groups["ja_eval_v03"].members)
    tasks = ["jcommonsenseqa_v03", "jnli_v03", "marcja_v03", "xwinograd_ja"]
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
    for task in tasks:
        out = simple_evaluate(
            model="hf-fast",
            model_args={"pretrained": str(tiny_lm), "dtype": "float32", "tokenization": "reference"},
            tasks=[task],
            num_fewshot=shots[task],
            task_manager=manager,
            device="cpu",
            batch_size=4,
            limit=5,
            log_samples=True,
            bootstrap_iters=0,
        )
        assert out["n-shot"][task] == shots[task] and 0.0 <= out["results"][task]["acc,none"] <= 1.0
        samples = out["samples"][task]
        assert len(samples) == 5
        n_requests = {"jcommonsenseqa_v03": 5, "jnli_v03": 3, "marcja_v03": 2, "xwinograd_ja": 2}[task]
        assert all(len(s["arguments"]) == n_requests for s in samples)
