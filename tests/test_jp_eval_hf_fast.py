"""The JP Eval generation tasks end to end under `hf-fast` on a tiny model (--limit), one task per
dataset and every kind of stop: MGSM's EOS text, JSQuAD's "\\n", 0.4's literal `<NL>`, per-doc
max_gen_toks. Default tokenization: the same texts and metrics as stock `hf`. tokenization=reference:
each text equals the reference's greedy_until run one request at a time."""

from __future__ import annotations

import pytest
from jp_eval_fixtures import GENERATION_MAX_LENGTH as MAX_LENGTH
from jp_eval_fixtures import GENERATION_TASKS as TASKS
from jp_eval_fixtures import evaluate_generation_tasks, generation_task_manager
from test_scoring_generation import reference_loop

import jinstruct.scoring  # noqa: F401  (registers hf-fast)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_lm):
    manager = generation_task_manager(tiny_lm, tmp_path_factory.mktemp("jp_eval_hf_fast"))
    return {
        "stock": evaluate_generation_tasks(tiny_lm, manager, "hf"),
        "fast": evaluate_generation_tasks(tiny_lm, manager, "hf-fast"),
        "reference": evaluate_generation_tasks(tiny_lm, manager, "hf-fast", tokenization="reference"),
    }


def texts(out: dict, task: str) -> dict[int, str]:
    return {s["doc_id"]: s["resps"][0][0] for s in out["samples"][task]}


@pytest.mark.parametrize("task", TASKS)
def test_default_tokenization_matches_stock_hf(runs, task):
    stock, fast = runs["stock"], runs["fast"]
    assert texts(fast, task) == texts(stock, task)
    assert len(texts(fast, task)) == 3
    assert fast["results"][task] == stock["results"][task]


@pytest.mark.parametrize("task", TASKS)
def test_reference_rules_match_one_request_at_a_time(runs, task, tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype="float32").eval()
    samples = runs["reference"]["samples"][task]
    assert len(samples) == 3
    for s in samples:
        context, gen = s["arguments"][0]
        expected = reference_loop(model, tok, context, gen["until"], gen["max_gen_toks"], MAX_LENGTH)
        assert s["resps"][0][0] == expected, (task, s["doc_id"], gen)
        # The stop strings were cut away, as the reference's post-processing does.
        assert all(stop not in s["resps"][0][0] for stop in gen["until"] if stop)


def test_every_kind_of_stop_and_a_per_doc_limit_were_run(runs):
    """The requests really carry the stops this test is about (else it would prove less)."""
    samples = runs["reference"]["samples"]
    until = {t: samples[t][0]["arguments"][0][1]["until"] for t in TASKS}
    assert until["jsquad_v05"] == ["\n"]
    assert until["jsquad12_v04"] == ["<NL>"]
    # MGSM: the EOS token's text first, then the prompt's stop
    assert until["mgsm_v00"][0] not in ("", "\n") and len(until["mgsm_v00"]) == 2
    limits = {s["arguments"][0][1]["max_gen_toks"] for t in ("jsquad_v05", "jaqket2_v01") for s in samples[t]}
    assert len(limits) > 1, "per-doc max_gen_toks should differ between docs"
    assert 0.0 <= runs["reference"]["results"]["xlsum_v04"]["rouge2,none"] <= 100.0
    assert any(s["resps"][0][0] for t in TASKS for s in samples[t]), "every text came out empty"
