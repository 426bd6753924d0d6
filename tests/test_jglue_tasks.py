"""The JGLUE tasks build byte-identical contexts to the reference harness (docs/jglue-tasks.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from reference_jglue import JNLI_EN, TASKS, reference_contexts

from jinstruct.harness_tasks import tasks_dir
from jinstruct.harness_tasks.jglue.fewshot import replay_shots, stratified_counts
from jinstruct.prompts import jglue_prompt

FIXTURE_JGLUE = Path(__file__).parent / "fixtures" / "JGLUE"


def build_task(name: str, **metadata):
    from lm_eval.tasks import TaskManager

    # Only our folder: indexing lm-eval's thousands of built-in YAMLs would dominate the test time.
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
    return manager.load([name])["tasks"][name]


def write_jglue(root: Path, family: str, train: list[dict], valid: list[dict], version: str = "1.1") -> Path:
    folder = root / "datasets" / f"{'jnli' if family == 'jnli' else 'marc_ja'}-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, rows in (("train", train), ("valid", valid)):
        with open(folder / f"{stem}-v{version}.json", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return root


def synthetic_rows(family: str, n: int, seed: int) -> list[dict]:
    """Made-up rows with skewed labels, so that stratified and plain draws differ."""
    rnd = random.Random(seed)
    subjects = ["男性", "女性", "少年", "少女", "犬", "猫", "老人", "学生"]
    verbs = ["走っています", "座っています", "笑っています", "眠っています", "歌っています"]
    rows = []
    for i in range(n):
        s1 = f"{rnd.choice(subjects)}が{rnd.choice(verbs)}。{i}"
        s2 = f"{rnd.choice(subjects)}が{rnd.choice(verbs)}。"
        if family == "jnli":
            label = rnd.choices(JNLI_EN, weights=[5, 3, 2])[0]
            rows.append(
                {
                    "sentence_pair_id": str(i),
                    "yjcaptions_id": f"x{i}",
                    "sentence1": s1,
                    "sentence2": s2,
                    "label": label,
                }
            )
        else:
            rows.append(
                {
                    "review_id": f"R{i}",
                    "sentence": s1 + s2,
                    "label": rnd.choices(["positive", "negative"], weights=[7, 3])[0],
                }
            )
    return rows


@pytest.fixture(scope="module")
def synthetic_jglue(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jglue")
    write_jglue(root, "jnli", synthetic_rows("jnli", 60, 1), synthetic_rows("jnli", 97, 2))
    write_jglue(root, "marcja", synthetic_rows("marcja", 50, 3), synthetic_rows("marcja", 83, 4))
    return root


def as_gold(rows: list[dict], family: str) -> list[dict]:
    names = JNLI_EN if family == "jnli" else ["positive", "negative"]
    return [{**r, "label": names.index(r["label"])} for r in rows]


def read_rows(root: Path, family: str) -> tuple[list[dict], list[dict]]:
    folder = root / "datasets" / ("jnli-v1.1" if family == "jnli" else "marc_ja-v1.1")
    rows = [(folder / f"{s}-v1.1.json").read_text(encoding="utf-8").splitlines() for s in ("train", "valid")]
    train, valid = ([json.loads(x) for x in lines] for lines in rows)
    return as_gold(train, family), as_gold(valid, family)


def test_worked_example_of_the_spec(tmp_path):
    """jnli13_v03, one shot: the spec's worked example, to the byte."""
    shot = {
        "sentence1": "男性がギターを弾いています。",
        "sentence2": "人が楽器を演奏しています。",
        "label": "entailment",
    }
    query = {
        "sentence1": "少年が自転車に乗っています。",
        "sentence2": "子供が乗り物に乗っています。",
        "label": "neutral",
    }
    write_jglue(tmp_path, "jnli", [shot], [query])
    task = build_task("jnli13_v03", data_dir=str(tmp_path))
    doc = task.eval_docs[0]
    expected = (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください：\n含意\n矛盾\n中立\n\n"
        "### 入力:\n前提：男性がギターを弾いています。\n仮説：人が楽器を演奏しています。\n\n### 応答:\n含意\n\n"
        "### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください：\n含意\n矛盾\n中立\n\n"
        "### 入力:\n前提：少年が自転車に乗っています。\n仮説：子供が乗り物に乗っています。\n\n### 応答:\n"
    )
    assert task.fewshot_context(doc, 1) == expected
    # Each choice is its own request, the bare label word after the context.
    instances = task.construct_requests(doc, expected)
    assert [inst.args for inst in instances] == [(expected, w) for w in ("含意", "矛盾", "中立")]


def test_description_strings_match_the_spec():
    assert jglue_prompt("jnli", "0.2", ("entailment", "contradiction", "neutral")).description == (
        "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。\n\n制約:\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n- そのいずれでもない場合はneutralと出力\n\n"
    )
    marc = jglue_prompt("marcja", "0.2", ("positive", "negative"))
    assert marc.description.endswith("出力は小文字化してください。 \n\n")
    v04 = jglue_prompt("jnli", "0.4", ("含意", "矛盾", "中立"))
    assert v04.sep == "<NL>" and "\n" not in v04.description + v04.text
    v05 = jglue_prompt("jnli", "0.5", ("含意", "矛盾", "中立"))
    assert v05.description == v04.description.replace("<NL>", "\n") and v05.sep == "\n"
    v06 = jglue_prompt("marcja", "0.6", ("ポジティブ", "ネガティブ"))
    assert v06.description == "<s>[INST] <<SYS>>\nあなたは役立つアシスタントです。\n<</SYS>>\n\n"
    assert v06.sep == " </s><s>[INST] "
    # Fullwidth colons where the spec has them, ASCII where it has those.
    v03 = jglue_prompt("jnli", "0.3", ("含意", "矛盾", "中立"))
    assert "選択してください：\n" in v03.text and "前提：{premise}" in v03.text and "### 指示:\n" in v03.text


@pytest.mark.parametrize("task_name", sorted(TASKS))
def test_every_context_equals_the_reference(task_name, synthetic_jglue):
    """Every doc, every shot count 0..3 and 5: the reference's context, shots included."""
    family = TASKS[task_name][0]
    train, valid = read_rows(synthetic_jglue, family)
    task = build_task(task_name, data_dir=str(synthetic_jglue))
    docs = list(task.eval_docs)
    assert [d["label"] for d in docs] == [d["label"] for d in valid]
    for k in (0, 1, 2, 3, 5):
        ours = [task.fewshot_context(doc, k) for doc in docs]
        assert ours == reference_contexts(task_name, train, valid, k), f"{task_name} k={k}"


@pytest.mark.parametrize("task_name", ["jnli13_v03", "marcja_v02"])
def test_limit_and_ranks_keep_full_run_prompts(task_name, synthetic_jglue):
    """--limit N takes the first N docs in dataset order, each with its full-run prompt; so do ranks."""
    family = TASKS[task_name][0]
    train, valid = read_rows(synthetic_jglue, family)
    full = reference_contexts(task_name, train, valid, 3)
    task = build_task(task_name, data_dir=str(synthetic_jglue))
    task.set_config("num_fewshot", 3)
    task.build_all_requests(limit=7, rank=0, world_size=1)
    by_doc = {inst.doc_id: inst.args[0] for inst in task.instances}
    assert by_doc == {i: full[i] for i in range(7)}
    task.build_all_requests(limit=None, rank=1, world_size=2)
    by_doc = {inst.doc_id: inst.args[0] for inst in task.instances}
    assert by_doc and all(by_doc[i] == full[i] for i in by_doc)
    assert set(by_doc) == set(range(1, len(valid), 2))


def _independent_plain(n_eval, pool, k):
    rnd = random.Random()
    rnd.seed(42)
    docs = list(range(n_eval))
    rnd.shuffle(docs)
    return {d: rnd.sample(pool, k) for d in docs}


def _independent_stratified(n_eval, pool, targets, k):
    from reference_jglue import stratified_sample

    rnd = random.Random()
    rnd.seed(42)
    docs = list(range(n_eval))
    rnd.shuffle(docs)
    return {d: stratified_sample(pool, k, rnd, lambda i: targets[i]) for d in docs}


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_replay_matches_an_independent_draw(k):
    rnd = random.Random(k)
    targets = [rnd.choices("abc", weights=[6, 3, 1])[0] for _ in range(301)]
    pool = list(range(len(targets)))
    n_eval = 500
    plain = replay_shots(n_eval, targets, k)
    assert {d: plain[d] for d in range(n_eval)} == _independent_plain(n_eval, pool, k)
    strat = replay_shots(n_eval, targets, k, stratified=True)
    assert {d: strat[d] for d in range(n_eval)} == _independent_stratified(n_eval, pool, targets, k)


def test_stratified_counts():
    assert stratified_counts([10, 10, 10], 3) == [1, 1, 1]
    assert stratified_counts([70, 20, 10], 3) == [
        2,
        1,
        0,
    ]  # int(2.1)=2, int(0.6)=0, int(0.3)=0 -> +1 smallest first
    assert stratified_counts([50, 30, 20], 2) == [1, 1, 0]
    assert sum(stratified_counts([1, 1, 998], 5)) == 5


def test_fixture_data_and_choices():
    task = build_task("jnli_v02", data_dir=str(FIXTURE_JGLUE))
    doc = task.eval_docs[0]
    assert task.doc_to_choice(doc) == ["entailment", "contradiction", "neutral"]
    assert task.config.target_delimiter == "" and task.config.fewshot_delimiter == "\n\n"
    source = task.config.metadata["data"]
    assert source["jglue_version"] == "1.1" and source["data_dir"] == str(FIXTURE_JGLUE)
    marc = build_task("marcja_v03", data_dir=str(FIXTURE_JGLUE))
    assert marc.doc_to_choice(marc.eval_docs[0]) == ["ポジティブ", "ネガティブ"]
    assert [d["label"] for d in marc.eval_docs][:2] == [0, 1]
