"""hf-fast generate_until: the reference harness's greedy rules, batched, give the same text for every
request as running those rules one request at a time, also where a shared few-shot header runs once
per group; the default tokenization stays stock HFLM."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

import jinstruct.scoring  # noqa: F401  (registers hf-fast)
from jinstruct.scoring.generation import cut_at_until
from jinstruct.scoring.kv_scoring import sliding_window_of

CONTEXTS = [
    "男性がギターを弾いています。",
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n### 指示:\n",
    "猫が窓辺で",
    "### 質問:\n犬が公園を走っている。\n\n### 返答:\n",
    "この製品はとても使いやすく、",
    "少年が自転車に乗っています。子供が乗り物に乗っています。少年が",
    "含意 矛盾",
]


def reference_loop(model, tok, context: str, until: list[str], max_gen_toks: int, max_length: int) -> str:
    """The reference's greedy_until for one request, written out from its source (gpt2.py + base.py)."""
    primary = tok.encode(until[0], add_special_tokens=False)
    primary = primary[-1] if primary else tok.eos_token_id
    context_enc = torch.tensor([tok.encode(context, add_special_tokens=False)[max_gen_toks - max_length :]])
    with torch.no_grad():
        cont = model.generate(
            context_enc,
            attention_mask=torch.ones_like(context_enc),
            max_length=context_enc.shape[1] + max_gen_toks,
            eos_token_id=primary,
            pad_token_id=primary,
            do_sample=False,
        )
    s = tok.decode(cont[0].tolist()[context_enc.shape[1] :])
    for term in until:
        s = s.split(term)[0]
    return s


def stop_strings(model, tok, contexts=tuple(CONTEXTS[:3])) -> list[str]:
    """Strings whose last token the tiny model does generate, so that some rows stop early."""
    found = []
    for context in contexts:
        ids = torch.tensor([tok.encode(context, add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
        for t in out[0, ids.shape[1] + 2 :].tolist():
            text = tok.decode([t])
            if text and tok.encode(text, add_special_tokens=False)[-1:] == [t]:
                found.append(text)
                break
    assert found, "the tiny model never produced a usable stop token"
    return found


def make_requests(model, tok) -> list[Instance]:
    stops = stop_strings(model, tok)
    reqs = []
    for i, context in enumerate(CONTEXTS * 2):
        until = [stops[i % len(stops)], "\n\n"] if i % 3 else ["\n\n", stops[0]]
        gen_kwargs = {"until": until, "max_gen_toks": 3 + (i * 5) % 17, "do_sample": False}
        reqs.append(Instance("generate_until", {}, (context, gen_kwargs), idx=0, metadata=("t", i, 1)))
    return reqs


@pytest.mark.parametrize("which", ["tiny_lm", "tiny_llama"])
def test_reference_rules_batched_equal_one_at_a_time(which, request):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jinstruct.scoring import HFFastLM

    path = request.getfixturevalue(which)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    reqs = make_requests(model, tok)
    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=4, tokenization="reference")
    ours = lm.generate_until(reqs, disable_tqdm=True)
    expected = [
        reference_loop(model, tok, r.args[0], r.args[1]["until"], r.args[1]["max_gen_toks"], lm.max_length)
        for r in reqs
    ]
    assert ours == expected
    # The loop really exercised per-row stops: some rows ended on their stop token before their limit.
    st = lm.generation_stats
    assert st.requests == len(reqs)
    assert st.generated_tokens < sum(r.args[1]["max_gen_toks"] for r in reqs)
    assert any(text != "" for text in ours)


def test_reference_truncation_keeps_the_tail(tiny_lm):
    """A context longer than max_length - max_gen_toks keeps its last tokens, as the reference's slice."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jinstruct.scoring import HFFastLM

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32).eval()
    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=2, tokenization="reference", max_length=40)
    long_context = "".join(CONTEXTS) * 2
    assert len(tok.encode(long_context, add_special_tokens=False)) > 40
    args = [
        (long_context, {"until": ["\n\n"], "max_gen_toks": 8}),
        (CONTEXTS[0], {"until": ["。"], "max_gen_toks": 5}),
    ]
    reqs = [Instance("generate_until", {}, a, idx=0) for a in args]
    ours = lm.generate_until(reqs, disable_tqdm=True)
    expected = [reference_loop(model, tok, c, k["until"], k["max_gen_toks"], 40) for c, k in args]
    assert ours == expected


def test_sampling_is_refused_under_reference_rules(tiny_lm):
    from jinstruct.scoring import HFFastLM

    lm = HFFastLM(pretrained=str(tiny_lm), batch_size=2, tokenization="reference", device="cpu")
    req = Instance("generate_until", {}, ("猫が", {"until": ["。"], "do_sample": True}), idx=0)
    with pytest.raises(ValueError, match="greedily"):
        lm.generate_until([req], disable_tqdm=True)


def test_default_tokenization_is_stock_generate_until(tiny_llama):
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jinstruct.scoring import HFFastLM

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    reqs = make_requests(model, tok)
    stock = HFLM(pretrained=model, tokenizer=tok, batch_size=4).generate_until(reqs, disable_tqdm=True)
    ours = HFFastLM(pretrained=model, tokenizer=tok, batch_size=4).generate_until(reqs, disable_tqdm=True)
    assert ours == stock
    assert any(stock)


# -- a shared few-shot header -------------------------------------------------------------------------
# A 3-shot instruction block (48 tokens under the tiny tokenizer) that every question below starts with.
HEADER = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
    "### 質問:\n男性がギターを弾いています。\n\n### 返答:\n含意\n\n"
    "### 質問:\n届いた商品は壊れていて、がっかりしました。\n\n### 返答:\nネガティブ\n\n### 質問:\n"
)
QUESTIONS = [
    "猫が窓辺で眠っている。",
    "この製品はとても使いやすく、",
    "少年が自転車に乗っています。",
    "犬が公園を走っている。",
    "人が楽器を演奏しています。",
    # Long in tokens (words the tokenizer never saw), so that the short rows of its batches are padded
    # far: the sliding-window case.
    "東京から大阪まで新幹線で何時間かかりますか。",
]


def header_requests(model, tok) -> list[Instance]:
    """Each question twice (a repeated context) with per-request limits and stops, the bare header (so
    the shared part ends one token before a context does), and two prompts without the header, which
    batch in full beside the header group."""
    contexts = [f"{HEADER}{q}\n\n### 返答:\n" for q in QUESTIONS]
    stops = stop_strings(model, tok, contexts + CONTEXTS[:3])
    reqs = []
    for i, context in enumerate(contexts * 2 + [HEADER] + CONTEXTS[2:4]):
        until = [stops[i % len(stops)], "\n\n"] if i % 3 else ["\n\n", stops[0]]
        gen_kwargs = {"until": until, "max_gen_toks": 3 + (i * 5) % 17, "do_sample": False}
        reqs.append(Instance("generate_until", {}, (context, gen_kwargs), idx=0, metadata=("t", i, 1)))
    return reqs


def one_at_a_time(model, tok, reqs, max_length: int) -> list[str]:
    return [
        reference_loop(model, tok, r.args[0], r.args[1]["until"], r.args[1]["max_gen_toks"], max_length)
        for r in reqs
    ]


def shared_header_len(tok, reqs) -> int:
    """What the header group shares, its last context token kept out (the bare header's last)."""
    import os

    heads = [tok.encode(r.args[0], add_special_tokens=False) for r in reqs if r.args[0].startswith(HEADER)]
    assert [len(os.path.commonprefix(heads))] == [len(h) for h in heads if len(h) == min(map(len, heads))]
    return len(os.path.commonprefix([h[:-1] for h in heads]))


def load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32
    ).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("which", ["tiny_lm", "tiny_llama"])
def test_shared_header_equals_one_at_a_time(which, request):
    from jinstruct.scoring import HFFastLM

    model, tok = load(request.getfixturevalue(which))
    reqs = header_requests(model, tok)
    in_group = sum(r.args[0].startswith(HEADER) for r in reqs)
    header_len = shared_header_len(tok, reqs)
    assert header_len >= 40
    # Prompt columns whose logits nobody reads stop at the last layer's keys and values: that layer
    # only ever runs one column per row.
    layers = model.base_model.layers
    columns = {0: [], len(layers) - 1: []}
    for i, seen in columns.items():
        layers[i].mlp.register_forward_hook(lambda m, args, out, seen=seen: seen.append(args[0].shape[1]))
    expected = None
    for batch_size in (1, 4):
        lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=batch_size, tokenization="reference")
        if expected is None:
            expected = one_at_a_time(model, tok, reqs, lm.max_length)
            for seen in columns.values():  # generate()'s own passes
                seen.clear()
        assert lm.generate_until(reqs, disable_tqdm=True) == expected
        st = lm.generation_stats
        # The header ran once, and every other row of its group was fed only its rest.
        assert (st.groups, st.header_tokens) == (1, header_len)
        assert st.saved_tokens == (in_group - 1) * header_len
        assert st.prompt_tokens == st.context_tokens - st.saved_tokens
        # Rows stopped on their own stop tokens before their own limits.
        assert st.generated_tokens < sum(r.args[1]["max_gen_toks"] for r in reqs)
    assert any(expected)
    assert max(columns[0]) >= header_len and set(columns[len(layers) - 1]) == {1}

    off = HFFastLM(
        pretrained=model, tokenizer=tok, batch_size=4, tokenization="reference", share_prefix=False
    )
    assert off.generate_until(reqs, disable_tqdm=True) == expected
    st = off.generation_stats
    assert (st.groups, st.header_tokens, st.saved_tokens) == (0, 0, 0)
    assert st.prompt_tokens == st.context_tokens


def test_min_shared_prefix_applies_to_generation(tiny_llama):
    from jinstruct.scoring import HFFastLM

    model, tok = load(tiny_llama)
    reqs = header_requests(model, tok)
    longest = max(len(tok.encode(r.args[0], add_special_tokens=False)) for r in reqs)
    lm = HFFastLM(
        pretrained=model, tokenizer=tok, batch_size=4, tokenization="reference", min_shared_prefix=longest
    )
    assert lm.generate_until(reqs, disable_tqdm=True) == one_at_a_time(model, tok, reqs, lm.max_length)
    assert lm.generation_stats.header_tokens == 0


def gemma3(tok, window: int):
    """Gemma 3 layout: two sliding-window layers and a global one."""
    from jinstruct.tiny import build_model

    layers = ["sliding_attention", "sliding_attention", "full_attention"]
    return build_model(
        tok, arch="gemma3_text", num_layers=3, sliding_window=window, layer_types=layers
    ).eval()


@pytest.mark.parametrize("window", [16, 128])
def test_sliding_window_shares_the_header_only_where_rows_fit(tiny_lm, window):
    from transformers import AutoTokenizer

    from jinstruct.scoring import HFFastLM

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = gemma3(tok, window)
    assert sliding_window_of(model.config) == window
    reqs = header_requests(model, tok)
    longest = max(len(tok.encode(r.args[0], add_special_tokens=False)) for r in reqs)
    fits = longest + max(r.args[1]["max_gen_toks"] for r in reqs) <= window
    assert fits == (window == 128)
    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=3, tokenization="reference")
    assert lm.generate_until(reqs, disable_tqdm=True) == one_at_a_time(model, tok, reqs, lm.max_length)
    # Past the window, padding between header and rest would shift what the window covers.
    assert lm.generation_stats.header_tokens == (shared_header_len(tok, reqs) if fits else 0)


def test_bloom_shares_the_header_with_positions_from_the_mask(tiny_lm):
    """BLOOM takes no position ids: its ALiBi positions are the running sum of the 2D mask, which
    `[ones(header) | pads | rest]` numbers as the unpadded run does."""
    from transformers import AutoTokenizer

    from jinstruct.scoring import HFFastLM
    from jinstruct.tiny import build_model

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    # Larger initial weights than the default: with those, the tiny BLOOM writes the same text after
    # every question, and a wrong mask or position would go unseen.
    model = build_model(tok, arch="bloom", initializer_range=0.3).eval()
    reqs = header_requests(model, tok)
    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=3, tokenization="reference")
    assert lm.generate_until(reqs, disable_tqdm=True) == one_at_a_time(model, tok, reqs, lm.max_length)
    assert lm.generation_stats.header_tokens == shared_header_len(tok, reqs)


def test_model_without_a_key_value_cache_generates_one_request_at_a_time(tiny_lm):
    """Mamba's scan would run through left padding and keeps no key/value cache to copy: no batches,
    no header, the reference's own generate call per request."""
    from transformers import AutoTokenizer

    from jinstruct.scoring import HFFastLM
    from jinstruct.tiny import build_model

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = build_model(tok, arch="mamba", seed=0).eval()
    reqs = header_requests(model, tok)
    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=4, tokenization="reference")
    assert lm.generate_until(reqs, disable_tqdm=True) == one_at_a_time(model, tok, reqs, lm.max_length)
    st = lm.generation_stats
    assert (st.batches, st.header_tokens, st.prompt_tokens) == (len(reqs), 0, st.context_tokens)


def test_cut_at_until_applies_every_string_in_turn():
    assert cut_at_until("答えは東京です。\n\n次", ["\n\n", "。"]) == "答えは東京です"
    assert cut_at_until("abc", []) == "abc"
