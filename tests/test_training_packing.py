"""Packed rows give each example exactly the logits and loss it has alone; the step planner is sound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from jinstruct.training.batching import (
    CostModel,
    choose_plan,
    collate,
    model_inputs,
    plan_step,
    token_loss_sum,
)
from jinstruct.training.data import TokenizedSet


def make_set(lengths, masked, vocab, seed=0) -> TokenizedSet:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, vocab, size=sum(lengths)).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return TokenizedSet(tokens, offsets, np.asarray(masked, dtype=np.int32))


@pytest.mark.parametrize("fixture, attn", [("tiny_lm", "sdpa"), ("tiny_lm", "eager"), ("tiny_llama", "sdpa")])
def test_packed_batch_equals_examples_alone(request, fixture, attn):
    path = request.getfixturevalue(fixture)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).eval()
    data = make_set([23, 9, 40, 5, 31], masked=[5, 0, 12, 1, 0], vocab=model.config.vocab_size)
    rows = [[0, 1, 3], [2], [4]]  # several examples share row 0; rows of unequal length get padded
    batch = collate(rows, data, pad_id=3, mode="pack")
    assert batch.tensors["attention_mask"].shape == (3, 1, 40, 40)  # 4D block-diagonal, rows padded to 40
    with torch.no_grad():
        packed_logits = model(**model_inputs(batch, "cpu", attn, torch.float32), use_cache=False).logits
        packed_loss = token_loss_sum(packed_logits, batch.tensors["labels"])
        alone_loss, alone_targets = 0.0, 0
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                single = collate([[i]], data, pad_id=3, mode="pack")
                logits = model(input_ids=single.tensors["input_ids"], use_cache=False).logits
                n = len(data.example(i))
                torch.testing.assert_close(
                    packed_logits[r, start : start + n], logits[0], atol=2e-5, rtol=1e-4
                )
                alone_loss += token_loss_sum(logits, single.tensors["labels"]).item()
                alone_targets += single.target_tokens
                start += n
    assert batch.target_tokens == alone_targets == int(data.target_tokens().sum())
    assert packed_loss.item() == pytest.approx(alone_loss, rel=1e-5)
    # transformers derives the same block-diagonal mask from the position ids alone (no 4D mask)...
    with torch.no_grad():
        derived = model(
            input_ids=batch.tensors["input_ids"], position_ids=batch.tensors["position_ids"], use_cache=False
        ).logits
    torch.testing.assert_close(derived[:2, :37], packed_logits[:2, :37], atol=2e-5, rtol=1e-4)
    # ...and without the per-example position ids and mask the examples leak into each other
    with torch.no_grad():
        leaky = model(input_ids=batch.tensors["input_ids"], use_cache=False).logits
    assert token_loss_sum(leaky, batch.tensors["labels"]).item() != pytest.approx(alone_loss, rel=1e-5)


def test_flattened_micro_batch_has_no_padding_and_same_targets():
    data = make_set([10, 20, 7], masked=[0, 3, 0], vocab=50)
    rows = [[0, 2], [1]]
    flat = collate(rows, data, pad_id=0, mode="pack", flatten=True)
    assert flat.tensors["input_ids"].shape == (1, 37) and flat.positions == flat.real_tokens == 37
    assert flat.target_tokens == collate(rows, data, pad_id=0, mode="pack").target_tokens == 9 + 17 + 6


def test_paper_padding_left_to_multiple_of_8():
    data = make_set([10, 3], masked=[0, 0], vocab=50)
    batch = collate([[0], [1]], data, pad_id=0, mode="pad", pad_to_multiple_of=8, padding_side="left")
    assert batch.tensors["input_ids"].shape == (2, 16)
    assert batch.tensors["attention_mask"][1].tolist() == [0] * 13 + [1] * 3
    assert batch.positions == 32 and batch.real_tokens == 13


@pytest.mark.parametrize("mode", ["pack", "group", "pad"])
@pytest.mark.parametrize("world", [1, 3])
def test_plan_covers_each_example_once_with_equal_micro_counts(mode, world):
    rng = np.random.default_rng(1)
    lengths = rng.integers(20, 301, size=200)
    ids = rng.permutation(200)[:77]
    plan = plan_step(ids, lengths, mode, micro_batch_size=4, seq_len=300, world_size=world)
    assert len({len(p) for p in plan}) == 1  # collectives line up
    seen = [i for proc in plan for micro in proc for row in micro for i in row]
    assert sorted(seen) == sorted(ids.tolist())
    for proc in plan:
        for micro in proc:
            assert len(micro) <= 4
            assert all(sum(lengths[i] for i in row) <= 300 for row in micro)


def test_packing_removes_most_padding():
    """Table I's global batch of 128 examples of 20-300 tokens: the paper's padding vs packed rows."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 301, size=128)
    data = make_set(lengths.tolist(), masked=[0] * 128, vocab=50)
    padded = {}
    for mode, multiple in (("pack", 1), ("pad", 8)):
        plan = plan_step(np.arange(128), lengths, mode, micro_batch_size=8, seq_len=300, world_size=1)
        batches = [collate(m, data, 0, mode, multiple, "left" if mode == "pad" else "right") for m in plan[0]]
        padded[mode] = 1 - sum(b.real_tokens for b in batches) / sum(b.positions for b in batches)
        assert sum(b.real_tokens for b in batches) == lengths.sum()
    assert padded["pack"] < 0.05 and padded["pad"] > 0.3, padded


def test_empty_share_is_a_lossless_dummy_row():
    data = make_set([5], masked=[0], vocab=50)
    plan = plan_step(np.array([0]), data.lengths, "pack", 4, 300, world_size=2)
    empty = collate(plan[1][0], data, pad_id=0, mode="pack")
    assert empty.target_tokens == 0 and empty.real_tokens == 0 and empty.tensors["input_ids"].shape == (1, 1)


def test_auto_packs_real_models_and_groups_tiny_ones():
    """Attention over a packed row grows with its square: negligible for a 7B model, most of a tiny one."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(30, 301, size=128)
    ids = np.arange(128)
    llama7b = CostModel(hidden=4096, layers=32, intermediate=11008, vocab=32000)
    tiny = CostModel(hidden=64, layers=2, intermediate=256, vocab=800)
    assert choose_plan(ids, lengths, "auto", 8, 300, 1, llama7b)[0] == "pack"
    assert choose_plan(ids, lengths, "auto", 8, 300, 1, tiny)[0] == "group"
    assert (
        choose_plan(ids, lengths, "auto", 8, 300, 1, tiny, varlen=True)[0] == "pack"
    )  # flash varlen: no waste
    assert choose_plan(ids, lengths, "pad", 8, 300, 1, tiny)[0] == "pad"  # explicit modes are kept
