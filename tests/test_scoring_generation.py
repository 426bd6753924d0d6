"""hf-fast generate_until: the reference harness's greedy rules, batched, give the same text for every
request as running those rules one request at a time; the default tokenization stays stock HFLM."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

import jinstruct.scoring  # noqa: F401  (registers hf-fast)
from jinstruct.scoring.generation import cut_at_until

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


def stop_strings(model, tok) -> list[str]:
    """Strings whose last token the tiny model does generate, so that some rows stop early."""
    found = []
    for context in CONTEXTS[:3]:
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


def test_cut_at_until_applies_every_string_in_turn():
    assert cut_at_until("答えは東京です。\n\n次", ["\n\n", "。"]) == "答えは東京です"
    assert cut_at_until("abc", []) == "abc"
