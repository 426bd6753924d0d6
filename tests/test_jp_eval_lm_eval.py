"""The JP Eval generation tasks end to end under stock lm-eval `hf` on a tiny model (--limit)."""

from __future__ import annotations

import pytest
from jp_eval_fixtures import GENERATION_TASKS as TASKS
from jp_eval_fixtures import evaluate_generation_tasks, generation_task_manager


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_lm):
    manager = generation_task_manager(tiny_lm, tmp_path_factory.mktemp("jp_eval_e2e"))
    out = evaluate_generation_tasks(tiny_lm, manager, "hf")
    tasks = {name: manager.load([name])["tasks"][name] for name in TASKS}
    return out, tasks


def test_metrics_reported(results):
    out, _ = results
    r = out["results"]
    assert 0.0 <= r["mgsm_v00"]["acc,none"] <= 1.0
    for name in ("jsquad_v05", "jsquad12_v04", "jaqket2_v01"):
        assert 0.0 <= r[name]["exact_match,none"] <= 100.0
        assert r[name]["exact_match,none"] <= r[name]["f1,none"] <= 100.0
    assert 0.0 <= r["xlsum_v04"]["rouge2,none"] <= 100.0
    assert 0.0 <= r["xlsum_v04"]["rouge2_mecab,none"] <= 100.0
    meta = out["configs"]["jaqket2_v01"]["metadata"]
    assert "shots show all their passages" in meta["jaqket_behaviour"]
    assert out["configs"]["mgsm_v00"]["metadata"]["docs_with_fewer_shots_5shot"] > 0


def test_requests_carry_the_reference_contexts_and_limits(results):
    out, tasks = results
    for name in TASKS:
        task = tasks[name]
        k = task.config.num_fewshot
        samples = out["samples"][name]
        assert len(samples) == 3
        for s in samples:
            ctx, gen = s["arguments"][0][0], s["arguments"][0][1]
            doc = task.eval_docs[s["doc_id"]]
            assert ctx == task.context_for(s["doc_id"], k)
            assert gen["max_gen_toks"] == task.max_gen_toks(doc)
            assert gen["until"] == task.until()
            assert gen["do_sample"] is False
            assert task.gen_prompt.stop not in s["resps"][0][0]
    # per-doc limits: JSQuAD's is the longest gold answer in model tokens
    jsq = tasks["jsquad_v05"]
    doc = jsq.eval_docs[0]
    assert jsq.max_gen_toks(doc) == max(len(jsq.encode(a)) for a in doc["answers"]["text"])
    assert tasks["mgsm_v00"].until()[0] == "</s>"
