"""Request planning: masking against lm-eval's own pair encoding, over-length policies, word counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jinstruct.harness_tasks.vqa.counting import (
    ModelTokenizer,
    OverLengthError,
    count_words,
    load_model_tokenizer,
    plan_requests,
)
from jinstruct.harness_tasks.vqa.task import build_dataset
from jinstruct.prompts import vqa_prompt

FIXTURE = Path(__file__).parent / "fixtures" / "vqa" / "question_answers.json"


def _pairs() -> list[tuple[str, str]]:
    images = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [(qa["question"], qa["answer"]) for image in images for qa in image["qas"]]


@pytest.fixture(scope="module")
def hflm(tiny_lm):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_lm), dtype="float32", device="cpu", batch_size=1)


def test_requests_split_exactly_where_the_paper_masks(tiny_lm, hflm):
    """lm-eval's own _encode_pair on our two requests: A covers W, B covers P, A-B scores W[len(P):]."""
    mt = load_model_tokenizer({"pretrained": str(tiny_lm)})
    tok = mt.tokenizer
    assert mt.max_length == hflm.max_length  # resolved the way lm-eval resolves it
    for language in ("ja", "en"):
        prompts = [vqa_prompt(q, language) for q, _ in _pairs()]
        answers = [a for _, a in _pairs()]
        for prompt, answer, plan in zip(prompts, answers, plan_requests(prompts, answers, mt)):
            P = tok(prompt)["input_ids"]
            W = tok(prompt + answer + tok.eos_token)["input_ids"]
            assert plan.context + plan.continuation_full == prompt + answer + tok.eos_token
            assert plan.rest == "\n" and plan.exact and not plan.truncated
            ctx_a, cont_a = hflm._encode_pair(plan.context, plan.continuation_full)
            ctx_b, cont_b = hflm._encode_pair(plan.context, plan.continuation_rest)
            assert ctx_a == ctx_b and ctx_a + cont_a == W and ctx_b + cont_b == P
            # A - B leaves exactly the answer tokens and the EOS: the paper's mask, EOS scored.
            assert cont_a[len(cont_b) :] == W[len(P) :] and W[-1] == tok.eos_token_id
            assert plan.n_tokens == len(W) - len(P) == len(cont_a) - len(cont_b)
            # The naive single request (prompt, answer+EOS) would also score the prompt's "\n".
            _, naive = hflm._encode_pair(prompt, answer + tok.eos_token)
            assert len(naive) == plan.n_tokens + 1 and tok.decode(naive[:1]) == "\n"


def test_bos_is_encoded_as_lm_eval_does(tiny_lm, hflm):
    mt = load_model_tokenizer({"pretrained": str(tiny_lm), "add_bos_token": True})
    bos = mt.tokenizer.bos_token_id
    prompt, answer = vqa_prompt("猫は何色ですか？"), "白"
    (plan,) = plan_requests([prompt], [answer], mt)
    W = mt.encode(prompt + answer + mt.eos_token)
    assert W[0] == bos and plan.exact and plan.n_tokens == len(W) - len(mt.encode(prompt))


def _merging_tokenizer():
    """A byte-level BPE without pre-tokenization, trained so that '\\n' merges into the answer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([vqa_prompt("猫は？") + "はい"] * 50, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")


def test_boundary_merge_is_flagged_not_hidden():
    tok = _merging_tokenizer()
    mt = ModelTokenizer(tok, "merging", None, 2048)
    prompt = vqa_prompt("猫は？")
    P, W = mt.encode(prompt), mt.encode(prompt + "はい、白い猫です" + tok.eos_token)
    assert W[: len(P)] != P  # this tokenizer really merges across the prompt/answer boundary
    (plan,) = plan_requests([prompt], ["はい、白い猫です"], mt)
    assert not plan.exact
    # Trained on exactly this text, it swallows the answer into the prompt's tokens: nothing to score.
    with pytest.raises(ValueError, match="row 0: .* no more tokens than the prompt alone"):
        plan_requests([prompt], ["はい"], mt)


def test_reference_pair_encoding_is_flagged(tiny_lm):
    mt = load_model_tokenizer({"pretrained": str(tiny_lm), "tokenization": "reference"})
    (plan,) = plan_requests([vqa_prompt("猫は何色ですか？")], ["白"], mt)
    assert mt.pair_encoding == "reference" and not plan.exact


def _short_mt(tiny_lm, max_length: int) -> ModelTokenizer:
    return load_model_tokenizer({"pretrained": str(tiny_lm), "max_length": max_length})


def test_over_length_policies(tiny_lm):
    mt = load_model_tokenizer({"pretrained": str(tiny_lm)})
    prompts = [vqa_prompt(q) for q, _ in _pairs()]
    answers = [a for _, a in _pairs()]
    full = [len(mt.encode(p + a + mt.eos_token)) for p, a in zip(prompts, answers)]
    limit = sorted(full)[len(full) // 2] - 1  # about half the pairs exceed it
    over = [n - 1 > limit for n in full]
    assert 0 < sum(over) < len(over)
    short = _short_mt(tiny_lm, limit)

    plans = plan_requests(prompts, answers, short, "truncate")
    for plan, is_over, prompt, answer in zip(plans, over, prompts, answers):
        assert plan.truncated == is_over
        kept = plan.context + plan.rest
        assert prompt.endswith(kept) and plan.target == answer + mt.eos_token  # never the answer
        assert len(short.encode(kept + plan.target)) - 1 <= limit
        if is_over:  # the fewest characters were dropped: one more would not fit
            dropped = len(prompt) - len(kept)
            assert len(short.encode(prompt[dropped - 1 :] + plan.target)) - 1 > limit

    skipped = plan_requests(prompts, answers, short, "skip")
    assert [p is None for p in skipped] == over
    first_over = over.index(True)
    with pytest.raises(OverLengthError, match=rf"row {first_over}: .*vqa_overlength"):
        plan_requests(prompts, answers, short, "error")
    with pytest.raises(OverLengthError, match="answer \\+ EOS alone"):
        plan_requests(prompts, ["猫" * 400], short, "truncate")


def test_dataset_reports_over_length_and_sample(tiny_lm):
    mt = load_model_tokenizer({"pretrained": str(tiny_lm)})
    full = [len(mt.encode(vqa_prompt(q) + a + mt.eos_token)) for q, a in _pairs()]
    limit = sorted(full)[len(full) // 2] - 1
    n_over = sum(n - 1 > limit for n in full)
    meta = {"pretrained": str(tiny_lm), "vqa_path": str(FIXTURE), "max_length": limit}
    truncated, run = build_dataset("ja", **meta)
    assert len(truncated["test"]) == len(full) and sum(truncated["test"]["truncated"]) == n_over
    assert run.n_over_length == n_over
    skipped, info = build_dataset("ja", **meta, vqa_overlength="skip")
    assert len(skipped["test"]) == len(full) - n_over and info.n_skipped == n_over == info.n_over_length
    assert f"skipped {n_over}" in info.data()
    sampled, run = build_dataset("ja", **meta, vqa_sample=5)
    assert len(sampled["test"]) == 5 and "sample 5 (seed 1234)" in run.data()
    with pytest.raises(ValueError, match="vqa_overlength must be one of"):
        build_dataset("ja", **meta, vqa_overlength="drop")
    with pytest.raises(ValueError, match="vqa_tokenizer"):
        build_dataset("ja", vqa_path=str(FIXTURE))


def test_word_counts_are_mecab_words():
    assert count_words("白と黒") == 3  # 白 / と / 黒
    assert count_words("はい、雨上がりです") >= 4
    assert count_words("") == 0
