"""How the examples of one optimizer step become micro batches, and how a micro batch becomes tensors.

Modes (`batching` in the config):
- "pack": first-fit-decreasing packing of the step's examples into rows of at most `seq_len` tokens.
  Position ids restart at 0 for every example and a 4D block-diagonal causal mask keeps examples apart
  for sdpa/eager (transformers passes 4D masks through untouched; it could derive the same mask from
  the position ids alone, but building it here is cheaper). For flash-attention the micro batch is
  flattened into one row and the position ids select the varlen path. No example attends to another.
- "group": one example per row, the step's examples sorted by length so rows of a micro batch are alike.
- "pad": the paper's code: one example per row in shuffled order, dynamic padding (left, to 8).

- "auto" (default): per step, whichever of "pack" and "group" costs less by `CostModel` (matmul work
  per row: linear layers grow with the row width, attention with its square, and sdpa/eager attend
  over the whole packed row). Packing wins for real models (attention is ~1% of a 7B model's work
  at 300 tokens); grouping wins for tiny models whose hidden size is small next to the row length.
  With flash-attention's varlen path nothing is wasted, so "auto" packs.

The loss is the sum of token losses over the whole optimizer step divided by the step's number of
target tokens, so how examples are spread over rows, micro batches and processes changes nothing but
speed. Every process gets the same number of micro batches (collectives must line up); a process with
nothing left gets a one-token row that carries no loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jinstruct.attention import additive_mask
from jinstruct.model_forward import base_model, forward_params

IGNORE_INDEX = -100

Row = list[int]  # example ids sharing one row
MicroBatch = list[Row]


def pack_rows(ids: np.ndarray, lengths: np.ndarray, capacity: int) -> list[Row]:
    """First-fit decreasing bin packing; rows come out fullest first."""
    order = sorted(ids.tolist(), key=lambda i: (-int(lengths[i]), i))
    rows: list[Row] = []
    free: list[int] = []
    for i in order:
        n = int(lengths[i])
        for r, space in enumerate(free):
            if n <= space:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(capacity - n)
    fill = [capacity - f for f in free]
    return [rows[r] for r in sorted(range(len(rows)), key=lambda r: (-fill[r], r))]


def plan_step(
    ids: np.ndarray, lengths: np.ndarray, mode: str, micro_batch_size: int, seq_len: int, world_size: int
) -> list[list[MicroBatch]]:
    """Split one step's examples into `world_size` equally long lists of micro batches."""
    if mode == "pack":
        rows = pack_rows(ids, lengths, seq_len)
    elif mode == "group":
        rows = [[i] for i in sorted(ids.tolist(), key=lambda i: (-int(lengths[i]), i))]
    elif mode == "pad":
        rows = [[i] for i in ids.tolist()]
    else:
        raise ValueError(f"unknown batching mode {mode!r}")
    per_process = -(-len(rows) // (world_size * micro_batch_size))
    n_micro = per_process * world_size
    # Contiguous, near-equal chunks keep rows of similar length together.
    sizes = [len(rows) // n_micro + (1 if k < len(rows) % n_micro else 0) for k in range(n_micro)]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(rows[start : start + size])
        start += size
    return [[chunks[m * world_size + rank] for m in range(per_process)] for rank in range(world_size)]


@dataclass
class CostModel:
    """Relative forward cost of a row of `width` tokens (multiply-adds; backward scales the same)."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> CostModel:
        hidden = config.hidden_size
        return cls(
            hidden,
            config.num_hidden_layers,
            getattr(config, "intermediate_size", None) or 4 * hidden,
            config.vocab_size,
        )

    def row(self, width: int) -> float:
        per_token = (
            self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.intermediate)
            + self.hidden * self.vocab
        )
        return width * per_token + self.layers * 2 * width * width * self.hidden

    def plan(self, plan: list[list[MicroBatch]], lengths: np.ndarray) -> float:
        total = 0.0
        for process in plan:
            for micro in process:
                if micro:
                    total += len(micro) * self.row(max(int(sum(lengths[i] for i in row)) for row in micro))
        return total


def choose_plan(
    ids: np.ndarray,
    lengths: np.ndarray,
    mode: str,
    micro_batch_size: int,
    seq_len: int,
    world_size: int,
    cost: CostModel | None = None,
    varlen: bool = False,
) -> tuple[str, list[list[MicroBatch]]]:
    """The step's plan and the mode that made it; "auto" picks the cheaper of packing and grouping."""
    if mode != "auto":
        return mode, plan_step(ids, lengths, mode, micro_batch_size, seq_len, world_size)
    if varlen or cost is None:
        return "pack", plan_step(ids, lengths, "pack", micro_batch_size, seq_len, world_size)
    plans = {m: plan_step(ids, lengths, m, micro_batch_size, seq_len, world_size) for m in ("pack", "group")}
    return min(plans.items(), key=lambda item: cost.plan(item[1], lengths))


def packing_unsupported(model) -> str | None:
    """Why packed rows would let examples see each other on this model (None: packing is exact).

    Packing needs per-example position ids and a block-diagonal mask. A model whose forward takes no
    position ids derives positions from a 2D padding mask (BLOOM's ALiBi) or carries a recurrent state
    along the row (Mamba); either would run one example into the next.
    """
    base, params = base_model(model), forward_params(model)
    if params is None:
        return f"{type(base).__name__}.forward cannot be inspected"
    if "position_ids" not in params:
        return f"{type(base).__name__}.forward takes no position_ids"
    return None


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]
    real_tokens: int  # non-padding positions
    positions: int  # all positions, padding included
    target_tokens: int  # positions that enter the loss


def collate(
    micro: MicroBatch,
    data,
    pad_id: int,
    mode: str,
    pad_to_multiple_of: int = 1,
    padding_side: str = "right",
    flatten: bool = False,
) -> Batch:
    """Tensors for one micro batch of `data` (a TokenizedSet).

    Packed rows carry `position_ids` and a 4D boolean block-diagonal causal mask (True: may attend);
    one-example rows carry a 2D padding mask. `flatten` puts the whole micro batch in a single row
    with position ids only (flash-attention varlen needs batch size 1).
    """
    rows_ids: list[np.ndarray] = []
    rows_labels: list[np.ndarray] = []
    rows_pos: list[np.ndarray] = []
    rows_seq: list[np.ndarray] = []  # which example of the row each position belongs to
    for row in micro or [[]]:
        ids_parts, label_parts, pos_parts, seq_parts = [], [], [], []
        for k, i in enumerate(row):
            ids = data.example(i).astype(np.int64)
            labels = ids.copy()
            labels[: max(int(data.masked[i]), 1)] = IGNORE_INDEX  # first token: never a target
            ids_parts.append(ids)
            label_parts.append(labels)
            pos_parts.append(np.arange(len(ids)))
            seq_parts.append(np.full(len(ids), k))
        if not ids_parts:  # a process with no work this step: one pad token, no loss
            ids_parts, label_parts, pos_parts = (
                [np.array([pad_id])],
                [np.array([IGNORE_INDEX])],
                [np.arange(1)],
            )
            seq_parts = [np.zeros(1, dtype=np.int64)]
        rows_ids.append(np.concatenate(ids_parts))
        rows_labels.append(np.concatenate(label_parts))
        rows_pos.append(np.concatenate(pos_parts))
        rows_seq.append(np.concatenate(seq_parts))
    real = sum(len(r) for r in rows_ids) if micro else 0
    flatten = flatten and mode == "pack"  # padded one-example rows go to flash-attention as they are
    if flatten:
        rows_ids, rows_labels, rows_pos = (
            [np.concatenate(rows_ids)],
            [np.concatenate(rows_labels)],
            [np.concatenate(rows_pos)],
        )
        rows_seq = [np.zeros(len(rows_ids[0]), dtype=np.int64)]  # unused: no mask with flatten
    width = max(len(r) for r in rows_ids)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(rows_ids), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows_ids), width), IGNORE_INDEX, dtype=np.int64)
    attention = np.zeros((len(rows_ids), width), dtype=np.int64)
    position_ids = np.zeros((len(rows_ids), width), dtype=np.int64)
    sequence = np.full((len(rows_ids), width), -1, dtype=np.int64)  # -1: trailing padding, its own block
    for r, (ids, lab, pos, seq) in enumerate(zip(rows_ids, rows_labels, rows_pos, rows_seq)):
        sl = slice(width - len(ids), width) if padding_side == "left" else slice(0, len(ids))
        input_ids[r, sl], labels[r, sl], attention[r, sl], position_ids[r, sl] = ids, lab, 1, pos
        sequence[r, sl] = seq
        if padding_side != "left" and len(ids) < width:
            # Trailing padding gets positions from 0 like a sequence of its own (the flash varlen path
            # reads sequence starts from the position ids); causality hides it from the real tokens.
            position_ids[r, len(ids) :] = np.arange(width - len(ids))
    tensors = {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels)}
    if mode == "pack":
        tensors["position_ids"] = torch.from_numpy(position_ids)
        if not flatten:
            seq = torch.from_numpy(sequence)
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            tensors["attention_mask"] = ((seq[:, :, None] == seq[:, None, :]) & causal)[:, None]
    else:
        tensors["attention_mask"] = torch.from_numpy(attention)
    target = int((labels[:, 1:] != IGNORE_INDEX).sum())
    return Batch(tensors, real_tokens=real, positions=input_ids.size, target_tokens=target)


def model_inputs(
    batch: Batch, device, attn_implementation: str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Batch tensors on the device, without labels. Eager attention adds the mask to the scores, so a
    4D boolean mask becomes additive there (0 where allowed, the dtype's minimum elsewhere)."""
    inputs = {k: v.to(device) for k, v in batch.tensors.items() if k != "labels"}
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 4 and attn_implementation == "eager":
        inputs["attention_mask"] = additive_mask(mask, dtype)
    return inputs


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum (not mean) of next-token cross-entropy over the labelled positions, in fp32."""
    shift_logits = logits[:, :-1, :].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(
        shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
