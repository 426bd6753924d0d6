"""hf-fast gives stock lm-eval HFLM's numbers on JNLI/MARC-ja-shaped few-shot requests."""

from __future__ import annotations

import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from jinstruct.prompts import jglue_prompt
from jinstruct.scoring import HFFastLM  # importing registers hf-fast
from jinstruct.scoring.plan import split_request

TOL = 1e-4

# Sentences written for these tests (not from any dataset).
NLI_PAIRS = [
    ("男性がギターを弾いています。", "人が楽器を演奏しています。", 0),
    ("少年が自転車に乗っています。", "少女が歩いています。", 1),
    ("猫が窓辺で眠っている。", "猫が外を見ている。", 2),
    ("犬が公園を走っている。", "動物が屋外にいる。", 0),
    ("女性がパンを焼いています。", "誰も料理をしていません。", 1),
    ("子供たちが海で泳いでいます。", "子供たちは楽しそうです。", 2),
]
REVIEWS = [
    ("この製品はとても使いやすく、毎日使っています。", 0),
    ("届いた商品は壊れていて、がっかりしました。", 1),
    ("値段の割に品質が良いと思います。", 0),
]


def _instance(context: str, continuation: str, doc_id: int, idx: int) -> Instance:
    return Instance("loglikelihood", {"doc_id": doc_id}, (context, continuation), idx)


def jnli_requests(shots: int = 3) -> list[Instance]:
    """Few-shot JNLI prompts (prompt 0.3, labels 含意/矛盾/中立): three choices per shared context."""
    prompt = jglue_prompt("jnli", "0.3", ("含意", "矛盾", "中立"))
    out = []
    for d, (premise, hypothesis, _) in enumerate(NLI_PAIRS):
        pool = NLI_PAIRS[:d] + NLI_PAIRS[d + 1 :]
        k = shots if d % 2 == 0 else max(0, shots - 1)  # unequal lengths, so batches pad
        examples = [prompt.doc_to_text(premise=p, hypothesis=h) + prompt.labels[g] for p, h, g in pool[:k]]
        query = prompt.doc_to_text(premise=premise, hypothesis=hypothesis)
        context = prompt.description + "".join(e + prompt.sep for e in examples) + query
        out += [_instance(context, label, d, i) for i, label in enumerate(prompt.labels)]
    return out


def marc_requests() -> list[Instance]:
    """MARC-ja prompt 0.3: two multi-token choices per context."""
    prompt = jglue_prompt("marcja", "0.3", ("ポジティブ", "ネガティブ"))
    out = []
    for d, (sentence, _) in enumerate(REVIEWS):
        shot = REVIEWS[(d + 1) % len(REVIEWS)]
        context = (
            prompt.description
            + prompt.doc_to_text(sentence=shot[0])
            + prompt.labels[shot[1]]
            + prompt.sep
            + prompt.doc_to_text(sentence=sentence)
        )
        out += [_instance(context, label, 100 + d, i) for i, label in enumerate(prompt.labels)]
    return out


def edge_requests() -> list[Instance]:
    """Empty context (the prefix token alone), trailing space moved to the continuation, a short context."""
    return [
        _instance("", "含意", 200, 0),
        _instance("製品レビュー ", "ポジティブ", 201, 0),
        _instance("男性が", "ギターを弾いています。", 202, 0),
    ]


def all_requests() -> list[Instance]:
    return jnli_requests() + marc_requests() + edge_requests()


def stock(path, **kw) -> HFLM:
    return HFLM(pretrained=str(path), device="cpu", dtype="float32", **kw)


def fast(path, **kw) -> HFFastLM:
    return HFFastLM(pretrained=str(path), device="cpu", dtype="float32", **kw)


def greedy_token_requests(lm: HFLM, contexts: list[str], n_tokens: int = 3):
    """Token-level requests whose continuations are the model's greedy tokens, plus one that is not.

    (Decoded greedy text of a random model rarely re-tokenizes into the same tokens, so these go straight
    to `_loglikelihood_tokens`, the method both models implement.)
    """
    import torch

    out = []
    for context in contexts:
        ids = lm.tok_encode(context)
        cont = []
        with torch.no_grad():
            for _ in range(n_tokens):
                cont.append(int(lm.model(torch.tensor([ids + cont])).logits[0, -1].argmax()))
        out.append(((context, "greedy"), ids, cont))
        out.append(((context, "not greedy"), ids, cont[:-1] + [(cont[-1] + 1) % lm.model.config.vocab_size]))
    return out


def assert_same(reference, candidate, requests) -> None:
    assert len(candidate) == len(reference) == len(requests)
    for req, (ll_a, g_a), (ll_b, g_b) in zip(requests, reference, candidate):
        assert abs(ll_a - ll_b) <= TOL, (req.args, ll_a, ll_b)
        assert g_a == g_b, req.args
    by_doc: dict[int, list[tuple[float, float]]] = {}
    for req, (ll_a, _), (ll_b, _) in zip(requests, reference, candidate):
        by_doc.setdefault(req.doc["doc_id"], []).append((ll_a, ll_b))
    for doc_id, pairs in by_doc.items():
        a = max(range(len(pairs)), key=lambda i: pairs[i][0])
        b = max(range(len(pairs)), key=lambda i: pairs[i][1])
        assert a == b, doc_id


@pytest.fixture(scope="module", params=["tiny_lm", "tiny_llama"])
def model_path(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def stock_results(model_path):
    lm = stock(model_path, batch_size=1)
    requests = all_requests()
    return lm, requests, lm.loglikelihood(requests)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_equal_to_stock_hf(model_path, stock_results, batch_size):
    _, requests, expected = stock_results
    lm = fast(model_path, batch_size=batch_size)
    got = lm.loglikelihood(requests)
    assert_same(expected, got, requests)
    st = lm.scoring_stats
    # Each few-shot context ran once (contexts whose prefix is empty or equal may share a row);
    # with the header shared across docs, fewer tokens than the floor without sharing.
    n_fewshot = len({r.args[0] for r in jnli_requests() + marc_requests()})
    assert n_fewshot <= st.contexts <= len({r.args[0] for r in requests})
    assert 0 < st.forward_tokens < st.minimum_tokens
    assert 0.0 <= st.padding_fraction < (0.05 if batch_size == 1 else 0.5)


def test_packed_rows_feed_the_minimum(model_path, stock_results):
    """Without header sharing, packed rows feed exactly the floor: each distinct context once and each
    distinct start of its continuations once (choices beginning with the same tokens share them)."""
    _, requests, expected = stock_results
    lm = fast(model_path, batch_size=4, share_prefix=False, layout="packed")
    assert_same(expected, lm.loglikelihood(requests), requests)
    st = lm.scoring_stats
    assert st.forward_tokens == st.minimum_tokens
    pairs = [
        lm._encode_pair(c, t) if c else ([lm.prefix_token_id], lm.tok_encode(t))  # as HFLM encodes them
        for c, t in (r.args for r in requests)
    ]
    split = [split_request(c, t, lm.max_length) for c, t in pairs]
    unmerged = sum(len(p) for p in {q.prefix for q in split}) + sum(len(q.tail) for q in split)
    assert st.forward_tokens < unmerged  # the requests' tails really overlap, and ran once


def test_stock_batched_equals_fast(model_path, stock_results):
    """Also against stock at a batch size > 1 (right-padded stock batches)."""
    _, requests, _ = stock_results
    expected = stock(model_path, batch_size=5).loglikelihood(requests)
    assert_same(
        expected, fast(model_path, batch_size=3, share_prefix=False).loglikelihood(requests), requests
    )


def test_truncation_matches_stock(tiny_lm):
    """Contexts longer than max_length are left-truncated the same way."""
    requests = jnli_requests()
    expected = stock(tiny_lm, batch_size=1, max_length=64).loglikelihood(requests)
    got = fast(tiny_lm, batch_size=2, max_length=64).loglikelihood(requests)
    assert_same(expected, got, requests)


def test_batch_size_auto(tiny_lm):
    requests = jnli_requests()[:6]
    expected = stock(tiny_lm, batch_size=1).loglikelihood(requests)
    lm = fast(tiny_lm, batch_size="auto", max_batch_size=4)
    assert_same(expected, lm.loglikelihood(requests), requests)
    assert lm.scoring_stats.requests == len(requests)


def test_is_greedy_matches_stock(model_path, stock_results):
    lm, requests, _ = stock_results
    token_requests = greedy_token_requests(lm, sorted({r.args[0] for r in requests if r.args[0]})[:3])
    expected = lm._loglikelihood_tokens(token_requests)
    assert [g for _, g in expected] == [True, False] * 3
    got = fast(model_path, batch_size=2)._loglikelihood_tokens(token_requests)
    assert [g for _, g in got] == [g for _, g in expected]
    assert max(abs(a - b) for (a, _), (b, _) in zip(expected, got)) <= TOL
