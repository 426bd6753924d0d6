"""The architecture record: every architecture in the README's table, as a tiny random model built here.

For each: `hf-fast` equals stock `hf` per request in both tokenization modes, on the layout the table
says; the trainer runs 3 LoRA steps with the default target modules; the adapter loads through
`peft=` in both backends and changes the scores identically; `jinstruct generate` runs base and tuned.
The README's architecture table is this file's EXPECTED, one row per entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from safetensors.torch import load_file
from test_scoring_equality import all_requests, assert_same, fast, jnli_requests, marc_requests, stock
from test_training_run import small_config

from jinstruct.scoring import encode_pair
from jinstruct.scoring.kv_scoring import SharedContextScorer
from jinstruct.tiny import TINY_ARCHITECTURES, build_model, train_tokenizer
from jinstruct.training.config import TrainConfig
from jinstruct.training.lora import ARCH_TARGETS
from jinstruct.training.train import train

SAMPLE = Path(__file__).resolve().parents[1] / "training" / "samples" / "ja_instructions.jsonl"

# model_type -> how hf-fast scores it: "packed" (one row per context, all choices in it), "cache"
# (contexts first, choices on their key/value cache), "packed+cache" (packed while a row fits the
# sliding window, cache beyond), "stock" (HFLM's own loop; see the README for why).
EXPECTED = {
    "gpt_neox": "packed",
    "llama": "packed",
    "mistral": "packed+cache",
    "qwen2": "packed",
    "qwen3": "packed",
    "gemma2": "packed+cache",
    "gemma3_text": "packed+cache",
    "phi3": "packed",
    "gpt2": "packed",
    "opt": "packed",
    "bloom": "cache",
    "falcon": "packed",
    "stablelm": "packed",
    "gptj": "packed",
    "mixtral": "packed",
    "qwen2_moe": "packed",
    "mamba": "stock",
}


def test_expected_covers_every_tiny_architecture():
    assert set(EXPECTED) == set(TINY_ARCHITECTURES)
    assert set(EXPECTED) <= set(ARCH_TARGETS)


@pytest.fixture(scope="module")
def tokenizer():
    from conftest import TOKENIZER_TEXTS

    return train_tokenizer(TOKENIZER_TEXTS, vocab_size=800)


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def arch_model(request, tokenizer, tmp_path_factory) -> tuple[str, Path]:
    arch = request.param
    out = tmp_path_factory.mktemp(f"arch_{arch}")
    tokenizer.save_pretrained(out)
    build_model(tokenizer, arch=arch, seed=0).save_pretrained(out, safe_serialization=True)
    return arch, out


def _layouts_used(monkeypatch) -> set[str]:
    used: set[str] = set()
    for name, label in (("_score_packed", "packed"), ("_score_cached", "cache")):
        original = getattr(SharedContextScorer, name)

        def spy(self, *args, _original=original, _label=label, **kwargs):
            used.add(_label)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SharedContextScorer, name, spy)
    return used


def test_hf_fast_equals_hf_in_both_tokenizations(arch_model, monkeypatch):
    arch, path = arch_model
    requests = all_requests()
    used = _layouts_used(monkeypatch)
    reference = stock(path, batch_size=4)

    lm = fast(path, batch_size=4)
    assert_same(reference.loglikelihood(requests), lm.loglikelihood(requests), requests)
    # The reference harness's encoding, scored by stock HFLM on exactly those tokens.
    token_requests = [
        (req.args, *encode_pair(reference.tokenizer, *req.args, mode="reference")) for req in requests
    ]
    # Small attention chunks here, so that every architecture's SDPA layers also run query-chunked.
    import transformers.integrations.sdpa_attention as sdpa

    chunks: list[int] = []
    original = sdpa.sdpa_attention_forward

    def spy(module, query, key, value, mask, *args, **kwargs):
        if mask is not None:  # a causal pass without a mask (the shared header) is not chunked
            chunks.append(query.shape[2])
        return original(module, query, key, value, mask, *args, **kwargs)

    monkeypatch.setattr(sdpa, "sdpa_attention_forward", spy)
    lm_ref = fast(path, batch_size=4, tokenization="reference", chunk_tokens=16)
    assert_same(reference._loglikelihood_tokens(token_requests), lm_ref.loglikelihood(requests), requests)
    if "packed" in EXPECTED[arch] and lm_ref._fast_path().chunks_queries:
        assert chunks and max(chunks) <= 16
    else:  # eager, cache-only, or attention code that tests for "sdpa" by name (Falcon, StableLM)
        assert not chunks
    assert lm_ref.model.config._attn_implementation in ("sdpa", "eager")

    expected = EXPECTED[arch]
    if expected == "stock":
        assert lm._fallback_reason and not used
    else:
        assert lm._fallback_reason is None
        assert used == set(expected.split("+")), used


@pytest.fixture(scope="module")
def adapter(arch_model, tmp_path_factory) -> Path:
    arch, path = arch_model
    out = tmp_path_factory.mktemp(f"lora_{arch}")
    # max_steps sets the schedule (the helper's epochs do not count), and no checkpoint is kept.
    config = small_config(
        path,
        out,
        seq_len=128,
        val_size=4,
        global_batch_size=4,
        max_steps=3,
        lr=1e-2,
        warmup_steps=1,
        save_every=1000,
    )
    return train(config)


def test_three_lora_steps_with_default_targets(arch_model, adapter):
    arch, _ = arch_model
    run = json.loads((adapter / "training_config.json").read_text(encoding="utf-8"))["run"]
    assert run["steps"] == 3
    assert run["lora_target_modules"] == ARCH_TARGETS[arch]
    assert run["final_val_loss"] is not None and run["final_val_loss"] == run["final_val_loss"]  # not NaN
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # B starts at zero: the steps moved it
    if EXPECTED[arch] in ("cache", "stock"):  # no position ids: one example per row, never packed
        assert run["batching"] == "group"


def test_adapter_loads_through_peft_in_both_backends(arch_model, adapter):
    _, path = arch_model
    requests = jnli_requests(shots=1)[:6] + marc_requests()[:2]
    base = stock(path, batch_size=4).loglikelihood(requests)
    tuned_stock = stock(path, batch_size=4, peft=str(adapter)).loglikelihood(requests)
    tuned_fast = fast(path, batch_size=4, peft=str(adapter)).loglikelihood(requests)
    assert_same(tuned_stock, tuned_fast, requests)
    assert max(abs(a - b) for (a, _), (b, _) in zip(base, tuned_stock)) > 1e-3  # the adapter is applied


def test_generate_runs_base_and_tuned(arch_model, adapter, tmp_path, capsys):
    from jinstruct import generate

    _, path = arch_model
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("日本で一番高い山は何ですか？\n", encoding="utf-8")
    out = tmp_path / "gen.md"
    code = generate.main(
        [
            "--model",
            str(path),
            "--adapter",
            str(adapter),
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "4",
            "--no-stream",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["model"] for r in rows] == ["base", "tuned"]
    assert all(r["new_tokens"] > 0 for r in rows)


def test_bloom_refuses_the_packed_layout(tokenizer, tmp_path):
    path = tmp_path / "bloom"
    tokenizer.save_pretrained(path)
    build_model(tokenizer, arch="bloom", seed=0).save_pretrained(path, safe_serialization=True)
    lm = fast(path, layout="packed")
    with pytest.raises(ValueError, match="layout=packed needs a model that takes position ids"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("男性が", "ギター"), 0)])
    assert torch.isfinite(
        torch.tensor(
            fast(path, layout="cache").loglikelihood(
                [Instance("loglikelihood", {}, ("男性が", "ギター"), 0)]
            )[0][0]
        )
    )


def test_packing_is_refused_where_examples_would_mix(tokenizer, tmp_path):
    path = tmp_path / "bloom"
    tokenizer.save_pretrained(path)
    build_model(tokenizer, arch="bloom", seed=0).save_pretrained(path, safe_serialization=True)
    config = TrainConfig(
        model=str(path),
        data=str(SAMPLE),
        output=str(tmp_path / "out"),
        batching="pack",
        max_steps=1,
        global_batch_size=2,
        micro_batch_size=2,
        val_size=0,
        progress=False,
    )
    with pytest.raises(ValueError, match="batching=pack cannot keep packed examples apart"):
        train(config)
