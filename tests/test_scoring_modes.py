"""hf-fast beyond the default path: reference tokenization, layouts, PEFT, sliding windows, fallback,
and the parent's rolling loglikelihood and generation passing through untouched."""

from __future__ import annotations

import logging

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model
from lm_eval.models.huggingface import HFLM
from test_scoring_equality import TOL, all_requests, assert_same, fast, jnli_requests, marc_requests, stock

from jinstruct.scoring import HFFastLM, continuation_token_count, encode_pair


def test_registered_under_hf_fast():
    assert get_model("hf-fast") is HFFastLM


# -- tokenization ----------------------------------------------------------------------------------------
def independent_reference_scores(path, requests, max_length: int) -> list[tuple[float, bool]]:
    """The reference harness's hf-causal scoring written out directly: separate encodings without
    special tokens, an empty context as [eos], left truncation to max_length + 1, one pass each."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    out = []
    for context, continuation in (r.args for r in requests):
        ctx = [tok.eos_token_id] if context == "" else tok(context, add_special_tokens=False)["input_ids"]
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        whole = (ctx + cont)[-(max_length + 1) :]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([whole[:-1]])).logits[0], dim=-1)
        scored = logprobs[-len(cont) :]
        target = torch.tensor(cont)
        ll = scored.gather(1, target[:, None]).sum().item()
        out.append((ll, bool((scored.argmax(-1) == target).all())))
    return out


@pytest.mark.parametrize("max_length", [2048, 48])
def test_reference_tokenization_matches_independent_implementation(tiny_lm, max_length):
    requests = all_requests()
    expected = independent_reference_scores(str(tiny_lm), requests, max_length)
    lm = fast(tiny_lm, batch_size=3, tokenization="reference", max_length=max_length)
    assert_same(expected, lm.loglikelihood(requests), requests)


def test_reference_and_default_tokenization_differ_where_they_should(tiny_lm):
    lm = stock(tiny_lm)
    # lm-eval moves the context's trailing space into the continuation; the reference does not.
    ctx, cont = "製品レビュー ", "ポジティブ"
    assert encode_pair(lm.tokenizer, ctx, cont, mode="reference") != encode_pair(lm.tokenizer, ctx, cont)
    assert encode_pair(lm.tokenizer, "", cont, mode="reference")[0] == [lm.tokenizer.eos_token_id]
    with pytest.raises(ValueError, match="tokenization=reference"):
        fast(tiny_lm, tokenization="paper")


def test_default_encoding_and_counts_agree_with_hflm(tiny_lm):
    """Tasks counting continuation tokens themselves (vqa_ppl) get HFLM's split."""
    lm = stock(tiny_lm)
    requests = all_requests() + [Instance("loglikelihood", {}, ("質問:\n", "答え</s>"), 0)]
    for req in requests:
        context, continuation = req.args
        if context:
            expected = lm._encode_pair(context, continuation)
        else:
            expected = ([lm.prefix_token_id], lm.tok_encode(continuation, add_special_tokens=False))
        assert encode_pair(lm.tokenizer, context, continuation) == expected
        assert continuation_token_count(lm.tokenizer, context, continuation) == len(expected[1])


# -- layouts, attention kinds, adapters ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["packed", "cache"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_layouts_and_attention_kinds(tiny_llama, layout, attention):
    requests = jnli_requests(shots=2) + marc_requests()
    expected = stock(tiny_llama, attn_implementation=attention).loglikelihood(requests)
    lm = fast(tiny_llama, batch_size=3, layout=layout, attn_implementation=attention)
    assert_same(expected, lm.loglikelihood(requests), requests)
    assert lm._fast_path().packs == (layout == "packed")


@pytest.mark.parametrize("layout", ["packed", "cache"])
def test_choices_that_start_alike_share_their_tokens(tiny_llama, layout):
    """Continuations that differ only in their last token have equal tails: the cache layout scores them
    from one row, the packed layout merges every common start into a tree; both equal stock."""
    reference = stock(tiny_llama)
    ids = reference.tok_encode("男性がギターを弾いています。猫が窓辺で眠っています。")
    ctx, a, b = ids[:-3], ids[-3], ids[-2]
    conts = [[a, b, last] for last in (ids[-1], 5, 17, 42)] + [[a, 9], [7, 8]]
    requests = [(("", ""), ctx, cont) for cont in conts]
    expected = reference._loglikelihood_tokens(requests)
    lm = fast(tiny_llama, batch_size=2, layout=layout)
    got = lm._loglikelihood_tokens(requests)
    for (ll, greedy), (want, want_greedy) in zip(got, expected):
        assert abs(ll - want) < TOL and greedy == want_greedy
    # Tail tokens fed (each tail starts with the context's last token c): the cache layout's rows are
    # [c a b] once for four choices, [c a] and [c 7]; the packed tree's nodes are c, a, b and 7.
    after = {"cache": 3 + 2 + 2, "packed": 4}[layout]
    assert lm.scoring_stats.forward_tokens == len(ctx) - 1 + after


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_packed_rows_attend_in_query_chunks(tiny_llama, attention, share_prefix, monkeypatch):
    """Under SDPA the packed rows attend in query chunks, in one forward pass, and score as unchunked
    rows do; eager attention runs them whole; the model's attention setting is restored after."""
    import transformers.integrations.sdpa_attention as sdpa

    requests = jnli_requests(shots=2) + marc_requests()
    expected = stock(tiny_llama, attn_implementation=attention).loglikelihood(requests)
    original = sdpa.sdpa_attention_forward
    forward_passes = {}
    for chunk in (0, 7):
        queries = []

        def spy(module, query, key, value, mask, *args, queries=queries, **kwargs):
            if mask is not None:  # a causal run without a mask (the header) is not chunked
                queries.append(query.shape[2])
            return original(module, query, key, value, mask, *args, **kwargs)

        monkeypatch.setattr(sdpa, "sdpa_attention_forward", spy)
        lm = fast(
            tiny_llama,
            batch_size=3,
            chunk_tokens=chunk,
            share_prefix=share_prefix,
            attn_implementation=attention,
        )
        passes = []
        lm.model.register_forward_pre_hook(lambda m, a, k, passes=passes: passes.append(1), with_kwargs=True)
        assert_same(expected, lm.loglikelihood(requests), requests)
        assert lm.model.config._attn_implementation == attention
        forward_passes[chunk] = len(passes)
        if attention == "eager":
            assert not queries  # the model's own attention function ran, not the chunked one
        elif chunk == 0:
            assert max(queries) > 7  # whole rows
        else:
            assert max(queries) == 7 and len(queries) > 2 * len(passes) * lm.model.config.num_hidden_layers
    assert forward_passes[7] == forward_passes[0]  # the chunks are inside the attention, not extra passes


@pytest.mark.parametrize("layout", ["packed", "cache"])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_prefixes_stop_at_the_last_layers_keys_and_values(tiny_llama, share_prefix, layout):
    """Under SDPA the header and the prefixes run up to the last layer's keys and values only: the last
    layer's MLP sees the tail positions alone (those the head reads), every other layer every position;
    the scores are stock's, and the model answers a plain forward as before."""
    requests = jnli_requests(shots=2) + marc_requests()
    expected = stock(tiny_llama).loglikelihood(requests)
    lm = fast(tiny_llama, batch_size=3, share_prefix=share_prefix, layout=layout)
    layers = lm.model.model.layers
    probe = torch.tensor([[5, 9, 13, 2, 7]])
    with torch.no_grad():
        before = lm.model(probe).logits
    seen = {i: [] for i in range(len(layers))}
    for i, layer in enumerate(layers):
        layer.mlp.register_forward_hook(lambda m, args, out, i=i: seen[i].append(args[0].shape[:2].numel()))
    assert_same(expected, lm.loglikelihood(requests), requests)
    stats = lm.scoring_stats
    assert sum(seen[len(layers) - 1]) == stats.head_positions
    assert all(sum(seen[i]) == stats.forward_positions for i in range(len(layers) - 1))
    assert stats.head_positions < stats.forward_positions / 4
    with torch.no_grad():
        assert torch.equal(lm.model(probe).logits, before)


def test_peft_adapter(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(base, config).save_pretrained(tmp_path / "lora")
    requests = jnli_requests(shots=1)
    expected = stock(tiny_llama, peft=str(tmp_path / "lora")).loglikelihood(requests)
    without = stock(tiny_llama).loglikelihood(requests)
    assert max(abs(a[0] - b[0]) for a, b in zip(expected, without)) > 1e-3  # the adapter matters
    # Small query chunks, so that the chunked attention also runs under the adapter.
    got = fast(tiny_llama, peft=str(tmp_path / "lora"), batch_size=2, chunk_tokens=16).loglikelihood(requests)
    assert_same(expected, got, requests)


@pytest.fixture(scope="module")
def tiny_gemma3(tiny_lm, tmp_path_factory):
    """Gemma 3 layout: sliding-window layers (window 16, far shorter than the prompts) and a global one."""
    from transformers import AutoTokenizer

    from jinstruct.tiny import build_model

    out = tmp_path_factory.mktemp("tiny_gemma3")
    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    layers = ["sliding_attention", "sliding_attention", "full_attention"]
    build_model(tok, arch="gemma3_text", num_layers=3, sliding_window=16, layer_types=layers).save_pretrained(
        out
    )
    tok.save_pretrained(out)
    return out


def test_sliding_window_model(tiny_gemma3):
    requests = jnli_requests(shots=1) + marc_requests()
    expected = stock(tiny_gemma3).loglikelihood(requests)
    lm = fast(tiny_gemma3, batch_size=3)
    assert lm._fast_path().window == 16
    assert_same(expected, lm.loglikelihood(requests), requests)
    # Rows are far longer than the window: no header may be shared (padding would shift the window).
    assert lm.scoring_stats.header_tokens == 0
    # Short requests fit the window: packed rows with a shared header, still equal.
    short = [
        Instance("loglikelihood", {"doc_id": i}, ("猫が窓辺で", c), i) for i, c in enumerate(["眠る", "走る"])
    ]
    lm = fast(tiny_gemma3, batch_size=2, min_shared_prefix=2)
    assert_same(stock(tiny_gemma3).loglikelihood(short), lm.loglikelihood(short), short)


# -- fallback and passthrough ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_mamba(tiny_lm, tmp_path_factory):
    """A state-space model: no key/value cache to share."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, MambaConfig

    out = tmp_path_factory.mktemp("tiny_mamba")
    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    config = MambaConfig(vocab_size=len(tok), hidden_size=32, state_size=4, num_hidden_layers=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_fallback_to_stock_path_says_so_once(tiny_mamba):
    requests = jnli_requests(shots=1)[:6]
    expected = stock(tiny_mamba).loglikelihood(requests)
    lm = fast(tiny_mamba, batch_size=2)
    log = logging.getLogger("lm_eval.models.hf_fast")  # lm-eval's CLI stops its logger propagating
    handler = Records()
    log.addHandler(handler)
    try:
        first = lm.loglikelihood(requests)
        second = lm.loglikelihood(requests)
    finally:
        log.removeHandler(handler)
    said = [r for r in handler.records if "falling back to the stock HF scoring path" in r.getMessage()]
    assert len(said) == 1 and "MambaForCausalLM" in said[0].getMessage()
    assert first == second
    assert max(abs(a[0] - b[0]) for a, b in zip(expected, first)) <= TOL
    assert lm.scoring_stats.requests == 0  # the shared-context path never ran


def test_rolling_and_generation_pass_through(tiny_lm):
    texts = ["男性がギターを弾いています。人が楽器を演奏しています。" * 3, "猫が窓辺で眠っている。"]
    rolling = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    gen = [
        Instance("generate_until", {}, (t, {"until": ["。"], "max_gen_toks": 6, "do_sample": False}), i)
        for i, t in enumerate(texts)
    ]
    base, ours = stock(tiny_lm, max_length=32), fast(tiny_lm, max_length=32)
    assert ours.loglikelihood_rolling(rolling) == base.loglikelihood_rolling(rolling)
    assert ours.generate_until(gen) == base.generate_until(gen)
    assert ours.scoring_stats.requests == 0
    assert not ours._stock_only  # the flag is reset after the parent's rolling code ran


@pytest.mark.parametrize("chunk", [0, 7])
def test_mixed_precision_with_the_boolean_mask(tiny_llama, chunk):
    """Under autocast the packed rows keep a boolean mask (the query dtype is not known up front): with
    and without query chunks that path runs and follows stock's bf16 run to bf16 rounding (0.6% here).
    A smoke test: bf16 is too coarse to see a mask error on a random tiny model; the float32 tests do."""
    requests = jnli_requests(shots=2) + marc_requests()
    expected = stock(tiny_llama, mixed_precision_dtype="bfloat16").loglikelihood(requests)
    lm = fast(tiny_llama, batch_size=3, chunk_tokens=chunk, mixed_precision_dtype="bfloat16")
    got = lm.loglikelihood(requests)
    assert lm._fast_path().autocast_dtype == torch.bfloat16 and lm._fast_path().packs
    for (ll, _), (want, _) in zip(got, expected):
        assert abs(ll - want) <= 0.02 * max(1.0, abs(want))


@pytest.mark.parametrize("add_bos_token", [False, True])
def test_strings_encoded_in_one_batch_equal_tok_encode(tiny_llama, add_bos_token, monkeypatch):
    """The batch pre-encoding gives every string the tokens `tok_encode` gives it, and lm-eval's pair
    encoding then encodes one string on its own only to check the batch (one per special-token setting)."""
    requests = all_requests()
    lm = fast(tiny_llama, batch_size=2, add_bos_token=add_bos_token)
    memo = lm._encode_all([r.args for r in requests])
    assert len(memo) > 20 and all(ids == HFLM.tok_encode(lm, s) for s, ids in memo.items())
    expected = stock(tiny_llama, add_bos_token=add_bos_token).loglikelihood(requests)
    alone = []
    original = HFLM.tok_encode
    monkeypatch.setattr(
        HFLM, "tok_encode", lambda self, s, *a, **k: alone.append(k) or original(self, s, *a, **k)
    )
    assert_same(expected, lm.loglikelihood(requests), requests)
    # Alone: the one check of the batch (stock encodes these requests' 52 strings one by one).
    assert len([k for k in alone if not k]) == 1
