"""JSQuAD, JAQKET v2, XLSum-ja and MGSM-ja build the reference harness's contexts byte for byte
(Stability-AI jp-stable, head effdbea), including the over-length retries and the XLSum truncation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from jp_eval_fixtures import (
    jaqket_items,
    jsquad_rows,
    mgsm_rows,
    write_jaqket,
    write_jsquad,
    write_mgsm,
    write_xlsum,
    xlsum_rows,
)
from reference_jp_eval import reference_run

from jinstruct.harness_tasks import tasks_dir
from jinstruct.harness_tasks.jglue.fewshot import replay_shots
from jinstruct.harness_tasks.jp_eval.data import JPEvalDataError, load_jaqket, load_mgsm, load_xlsum
from jinstruct.harness_tasks.jp_eval.fewshot import replay_with_retry
from jinstruct.harness_tasks.jp_eval.task import PromptTooLongError

VERSIONS = {
    "jsquad": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"],
    "jsquad12": ["0.2", "0.3", "0.4", "0.5", "0.6"],
    "jaqket2": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"],
    "xlsum": ["0.0", "0.3", "0.4", "0.5", "0.6"],
    "mgsm": ["0.0", "0.3", "0.4", "0.5", "0.6"],
}
SHOTS = {"jsquad": 2, "jsquad12": 2, "jaqket2": 1, "xlsum": 1, "mgsm": 5}
TASKS = [(f"{fam}_v{v.replace('.', '')}", fam, v) for fam, vs in VERSIONS.items() for v in vs]


def build_task(name: str, **metadata):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
    return manager.load([name])["tasks"][name]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("jp_eval_data")
    mgsm_train = mgsm_rows(8, 11)
    jaqket_train, jaqket_valid = jaqket_items(30, 12), jaqket_items(41, 13)
    return {
        "data_dir": str(write_jsquad(root / "JGLUE", jsquad_rows(25, 1), jsquad_rows(37, 2))),
        "mgsm_dir": str(write_mgsm(root / "mgsm", mgsm_rows(33, 3), mgsm_train)),
        "jaqket_dir": str(write_jaqket(root / "jaqket", jaqket_train, jaqket_valid)),
        "xlsum_dir": str(write_xlsum(root / "xlsum", xlsum_rows(20, 4), xlsum_rows(29, 5))),
    }


def _ref_docs(task):
    """The task's rows as plain dicts, in dataset order (the reference sees the same rows)."""
    pool = [dict(r) for r in task.dataset[task.config.fewshot_split]]
    return pool, [dict(d) for d in task.eval_docs]


def _tok(tiny_lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    return (lambda s: tok.encode(s, add_special_tokens=False)), (
        lambda ids: tok.decode(ids, skip_special_tokens=True)
    )


def _budgeted_max_length(family, version, pool, docs, k, encode) -> int:
    """A model length at which about half the full-shot prompts are too long, so retries/truncation happen."""
    full = (
        reference_run(
            family, version, pool, docs, k, tokenize=encode, decode=None, max_length=10**9, max_gen_toks=256
        )
        if family != "xlsum"
        else reference_run(
            family, version, pool, docs, k, tokenize=encode, decode=lambda x: "", max_length=10**9
        )
    )
    lengths = sorted(len(encode(c)) for c in full)
    median = lengths[len(lengths) // 2]
    return median + (256 if family == "mgsm" else 0)


@pytest.mark.parametrize(("name", "family", "version"), TASKS, ids=[t[0] for t in TASKS])
def test_every_context_equals_the_reference(name, family, version, data, tiny_lm):
    encode, decode = _tok(tiny_lm)
    task = build_task(name, pretrained=str(tiny_lm), **data)
    pool, docs = _ref_docs(task)
    k = SHOTS[family]
    max_length = 2048
    if family in ("mgsm", "jaqket2", "xlsum"):
        max_length = _budgeted_max_length(family, version, pool, docs, k, encode)
        task = build_task(name, pretrained=str(tiny_lm), jp_eval_max_length=max_length, **data)
    expected = reference_run(
        family,
        version,
        pool,
        docs,
        k,
        tokenize=encode,
        decode=decode,
        max_length=max_length,
        max_gen_toks=256,
    )
    for i, want in enumerate(expected):
        if want is None:
            with pytest.raises(PromptTooLongError):
                task.context_for(i, k)
        else:
            assert task.context_for(i, k) == want, f"{name} doc {i}"
    if family in ("mgsm", "jaqket2"):
        reduced = task.config.metadata[f"docs_with_fewer_shots_{k}shot"]
        assert 0 < reduced < len(docs)
    if family == "xlsum":
        untruncated = reference_run(
            family, version, pool, docs, k, tokenize=encode, decode=decode, max_length=10**9
        )
        assert sum(a != b for a, b in zip(untruncated, expected)) > 0


def test_retry_draws_again_and_shifts_later_docs():
    n_eval, n_pool, k = 6, 8, 3
    order = list(range(n_eval))
    rnd = random.Random(42)
    rnd.shuffle(order)
    first = order[0]
    # the first doc in shuffled order fits only with 1 shot: two failed draws (3, then 2 shots), then 1
    draws = replay_with_retry(n_eval, n_pool, k, lambda doc, shots: doc != first or len(shots) <= 1)
    rnd = random.Random(42)
    rnd.shuffle(list(range(n_eval)))
    rnd.sample(range(n_pool), 3), rnd.sample(range(n_pool), 2)
    expected = {first: rnd.sample(range(n_pool), 1)}
    for doc in order[1:]:
        expected[doc] = rnd.sample(range(n_pool), 3)
    assert [d.shots for d in draws] == [expected[i] for i in range(n_eval)]
    assert draws[first].failed_attempts == (3, 2)
    plain = replay_shots(n_eval, [0] * n_pool, k)
    assert any(plain[doc] != expected[doc] for doc in order[1:])  # the retry shifted later docs' shots
    assert replay_with_retry(n_eval, n_pool, k, lambda d, s: True)[0].shots == plain[0]


def test_no_prompt_fits_is_none():
    draws = replay_with_retry(3, 5, 2, lambda doc, shots: doc != 1)
    assert draws[1].shots is None and draws[1].failed_attempts == (2, 1, 0)


def test_mgsm_dir_is_read_as_data(data):
    loaded = load_mgsm({"mgsm_dir": data["mgsm_dir"]})  # exemplars.py ends in `raise SystemExit`: never run
    assert len(loaded.splits["train"]) == 8 and len(loaded.splits["test"]) == 33
    assert loaded.splits["train"][0]["question"].startswith("問題：")
    assert all(isinstance(r["answer_number"], int) for r in loaded.splits["test"])


def test_mgsm_tsv_thousands_commas(tmp_path):
    folder = write_mgsm(
        tmp_path / "m", [{"question": "大きな数は？", "answer_number": 2125}], mgsm_rows(8, 1)
    )
    assert "2,125" in (folder / "mgsm_ja.tsv").read_text(encoding="utf-8")
    assert load_mgsm({"mgsm_dir": str(folder)}).splits["test"][0]["answer_number"] == 2125
    (folder / "mgsm_ja.tsv").write_text("質問だけ\n", encoding="utf-8")
    with pytest.raises(JPEvalDataError, match=r"mgsm_ja.tsv, line 1"):
        load_mgsm({"mgsm_dir": str(folder)})


def test_jaqket_drops_questions_without_an_answer_passage(data):
    five = load_jaqket({"jaqket_dir": data["jaqket_dir"]}, 5)
    seven = load_jaqket({"jaqket_dir": data["jaqket_dir"]}, 7)
    dropped = five.source["dropped_without_answer"]["validation"]
    assert dropped > 0 and seven.source["dropped_without_answer"]["validation"] == 0
    assert len(five.splits["validation"]) == 41 - dropped
    assert all(
        len(r["ctxs"]["text"]) == 5 and any(r["ctxs"]["has_answer"]) for r in five.splits["validation"]
    )


def test_local_sources_fail_clearly(tmp_path, data):
    with pytest.raises(JPEvalDataError, match="mgsm_ja.tsv"):
        load_mgsm({"mgsm_dir": str(tmp_path)})
    with pytest.raises(JPEvalDataError, match="train_jaqket_59.350.json does not exist"):
        load_jaqket({"jaqket_dir": str(tmp_path)}, 5)
    bad = tmp_path / "x"
    (bad / "data").mkdir(parents=True)
    (bad / "data" / "train.csv").write_text("id,text\n1,本文\n", encoding="utf-8")
    (bad / "data" / "test.csv").write_text("id,text\n1,本文\n", encoding="utf-8")
    with pytest.raises(JPEvalDataError, match=r"train.csv, row 2: field 'summary'"):
        load_xlsum({"xlsum_dir": str(bad)})


def test_unreachable_hub_names_what_was_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(JPEvalDataError) as err:
        load_mgsm({})
    assert "juletxara/mgsm" in str(err.value) and "mgsm_dir" in str(err.value)


def test_yaml_metadata_for_the_catalog():
    import yaml

    for name, family, version in TASKS:
        text = (Path(tasks_dir()) / "jp_eval" / f"{name}.yaml").read_text(encoding="utf-8")
        meta = yaml.safe_load(text)["metadata"]
        ref_family = {
            "jsquad": "jsquad-1.1",
            "jsquad12": "jsquad-1.2",
            "jaqket2": "jaqket_v2-0.2",
            "xlsum": "xlsum_ja-1.0",
            "mgsm": "mgsm-1.0",
        }[family]
        assert meta == {
            "version": 1.0,
            "family": family,
            "prompt_version": version,
            "reference_task": f"{ref_family}-{version}",
        }
