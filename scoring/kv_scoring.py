"""Scoring continuations from a shared context, in one of two layouts.

"packed" (default where the attention takes a custom mask: sdpa, eager), one forward pass per batch,
one row per distinct context:

    [left pads][rest of the prefix][tails]

where the tails of the context's requests are merged into a tree (choices that start with the same
tokens share them; each node follows its parent). A 4D mask keeps the prefix causal and lets each
tail token see the prefix and its own ancestors only; each tail token gets the position it has in its
own unpadded sequence. Nothing is copied per choice. Under SDPA the attention runs in query chunks
(`chunked_attention`), which skips most of the mask's upper triangle, and the batch runs as two passes
over the same mask: the prefixes, aligned at their ends, stop once the last layer has cached their keys
and values (no logit is read there, so the last layer's output projection, MLP and attention are
needed at the tail positions alone), then the tails run through every layer on that cache.

"cache" (any attention, and whenever a row would not fit a sliding window): the prefixes run first
(B rows, left-padded, 2D padding mask; under SDPA up to the last layer's keys and values, as above);
their key/value cache is then indexed to one row per distinct tail (choices that differ in their last
token only share a row) and the tails run on it, right-padded.

Left padding keeps every real token of a row at one constant index offset, so causal, padding and
sliding-window masks see the same token distances as an unpadded run; explicit position ids give each
token its unpadded position. A header common to a group of prefixes is run once and its cache reused
by every batch of the group. The output head runs on the tail positions only (`logits_to_keep`),
which is where the time goes for models with a large vocabulary.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from jinstruct.attention import additive_mask
from jinstruct.model_forward import base_model, cache_keyword, forward_params

from .chunked_attention import keys_only, last_layer, query_chunks, swaps_attention
from .plan import Context, Request, tail_tree

_SUPPORTED_LAYER_TYPES = {"full_attention", "sliding_attention"}
# Attention implementations that apply a caller's 4D mask as given (bool for sdpa, additive for eager).
_CUSTOM_MASK_ATTENTION = {"sdpa", "eager"}
# Models whose forward takes no position ids because it derives positions from the 2D padding mask
# (BLOOM's ALiBi: the cumulative sum of the mask). The cache layout gives them an exact run: left-padded
# prefixes and right-padded tails under one concatenated mask number every real token as unpadded.
# The packed layout cannot: its per-tail positions are not a cumulative sum of any 2D mask.
_POSITIONS_FROM_MASK = {"bloom"}
LAYOUTS = ("auto", "packed", "cache")


@dataclass
class PassStats:
    """Token accounting of the forward passes, for the padding report and the benchmark."""

    tokens: int = 0  # real tokens fed to the model
    positions: int = 0  # positions fed, padding included
    head_positions: int = 0  # positions the output head was computed at
    forward_calls: int = 0

    def add(self, tokens: int, positions: int, head_positions: int) -> None:
        self.tokens += tokens
        self.positions += positions
        self.head_positions += head_positions
        self.forward_calls += 1

    @property
    def padding_fraction(self) -> float:
        return 0.0 if self.positions == 0 else 1.0 - self.tokens / self.positions


def _layer_types(config) -> tuple[list[str], list[dict]] | None:
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs

        types, kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
        return list(types), list(kwargs)
    except Exception:  # older/odd configs: fall back to reading the fields directly
        return None


def sliding_window_of(config) -> int | None:
    """The smallest sliding-attention window of the model, or None when all layers attend fully."""
    found = _layer_types(config)
    if found is not None:
        types, kwargs = found
        windows = [kw.get("sliding_window") for t, kw in zip(types, kwargs) if t == "sliding_attention"]
        windows = [w for w in windows if w]
        return min(windows) if windows else None
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    return getattr(text, "sliding_window", None)


def unsupported_reason(model, backend: str) -> str | None:
    """Why the shared-context path cannot run this model (None: it can)."""
    if backend != "causal":
        return f"the {backend} backend is not a decoder-only causal LM"
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and any(
        getattr(c, "is_prompt_learning", False) for c in peft_config.values()
    ):
        return "a prompt-learning PEFT adapter prepends virtual tokens that a shared cache cannot hold"
    base = base_model(model)
    config = getattr(base, "config", None)
    if config is None:
        return "the model has no transformers config"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models have no causal key/value cache to share"
    params = forward_params(base)
    if params is None:
        return "the model's forward signature cannot be inspected"
    missing = [p for p in ("attention_mask", "position_ids") if p not in params]
    if getattr(config, "model_type", None) in _POSITIONS_FROM_MASK and "position_ids" in missing:
        missing.remove("position_ids")
    if not ({"cache", "past_key_values"} & set(params)):
        missing.append("cache/past_key_values")
    if missing:
        return f"{type(base).__name__}.forward takes no {', '.join(missing)}"
    found = _layer_types(config)
    if found is not None:
        other = sorted(set(found[0]) - _SUPPORTED_LAYER_TYPES)
        if other:
            return (
                f"layer types {other} (not plain or sliding-window attention) are not cached as keys/values"
            )
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(text, "attention_chunk_size", None):
        return "chunked attention depends on absolute token indices, which padding shifts"
    return None


def header_copy(header_cache, rows: int):
    """A one-row header cache repeated to `rows` rows; a copy, as every batch of the group reuses it."""
    cache = copy.deepcopy(header_cache)
    cache.batch_repeat_interleave(rows)
    return cache


def resolve_chunk_tokens(chunk_tokens: int | str) -> int:
    """`auto`: queries in chunks of 128 (in a one-off timing of CPU SDPA on the 2-core development
    machine, chunks of 128-256 ran fastest at one and two threads; smaller ones lose kernel efficiency)."""
    return 128 if chunk_tokens == "auto" else int(chunk_tokens)


class SharedContextScorer:
    """Runs the planned batches on a transformers causal LM."""

    def __init__(
        self,
        model,
        device: torch.device,
        pad_token_id: int,
        softmax_dtype: torch.dtype | None = None,
        autocast_dtype: torch.dtype | None = None,
        layout: str = "auto",  # one of LAYOUTS, checked where hf-fast reads it from the model args
        chunk_tokens: int | str = "auto",
    ) -> None:
        self.model = model
        self.device = device
        self.pad_token_id = int(pad_token_id)
        self.softmax_dtype = softmax_dtype
        self.autocast_dtype = autocast_dtype
        self.base = base = base_model(model)
        self.config = base.config
        params = forward_params(base)
        self.cache_kw = cache_keyword(params)
        self.keeps_logits = "logits_to_keep" in params
        self.takes_positions = "position_ids" in params  # else positions follow the mask (see above)
        self.window = sliding_window_of(self.config)
        attention = getattr(self.config, "_attn_implementation", None)
        if layout == "packed" and attention not in _CUSTOM_MASK_ATTENTION:
            raise ValueError(
                f"hf-fast: layout=packed needs sdpa or eager attention, this model uses {attention!r}; "
                "use layout=auto or layout=cache"
            )
        if layout == "packed" and not self.takes_positions:
            raise ValueError(
                f"hf-fast: layout=packed needs a model that takes position ids; {type(base).__name__} derives "
                "them from the padding mask; use layout=auto or layout=cache"
            )
        self.layout = layout
        self.packs = layout != "cache" and attention in _CUSTOM_MASK_ATTENTION and self.takes_positions
        self.eager_mask = attention == "eager"
        # Query chunks swap in a registered attention function, which not every SDPA model calls.
        self.chunks_queries = swaps_attention(base)
        self.chunk_tokens = chunk_tokens
        # Where the attention function can be swapped, the header and the prefixes stop at the last
        # layer's keys and values (`_split_forward`).
        self.last_layer = last_layer(base)
        self.prefix_keys_only = self.last_layer is not None
        self.stats = PassStats()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.config)

    def _forward(self, input_ids, attention_mask, position_ids, cache, keep: int = 0):
        """Logits of the last `keep` positions (all when 0 or when the model cannot slice them)."""
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            self.cache_kw: cache,
            "use_cache": cache is not None,
        }
        if self.takes_positions:
            kwargs["position_ids"] = position_ids
        if keep and self.keeps_logits:
            kwargs["logits_to_keep"] = keep
        with torch.no_grad(), self._autocast():
            return self.model(**kwargs).logits

    # -- passes -----------------------------------------------------------------------------------------
    def run_header(self, header: Sequence[int]):
        """Keys and values of a header every context of a group starts with (one row)."""
        cache = self._new_cache()
        ids = torch.tensor([list(header)], dtype=torch.long, device=self.device)
        positions = torch.arange(len(header), device=self.device).unsqueeze(0)
        self._prefix_forward(ids, torch.ones_like(ids), positions, cache)
        self.stats.add(len(header), len(header), self._prefix_head_positions(ids))
        return cache

    def _prefix_forward(self, ids, mask, positions, cache) -> None:
        """A pass whose logits nobody reads (a header, prefixes): only its keys and values are kept, so
        where the model allows it stops once the last layer has cached them (attending in query chunks
        under a mask, as the packed rows do)."""
        with keys_only(self.base, self.last_layer, resolve_chunk_tokens(self.chunk_tokens)):
            self._forward(ids, mask, positions, cache, keep=1)

    def _prefix_head_positions(self, ids) -> int:
        if self.prefix_keys_only:
            return 0
        return ids.shape[0] if self.keeps_logits else ids.numel()

    def score_batch(
        self,
        contexts: Sequence[Context],
        requests: Sequence[Request],
        header_len: int = 0,
        header_cache=None,
    ) -> list[tuple[int, float, bool]]:
        """Yield (request index, log-likelihood, is_greedy) for every request of these contexts."""
        if self.packs:
            trees = [tail_tree([requests[r].tail for r in c.rows]) for c in contexts]
            rests = [len(c.prefix) - header_len for c in contexts]
            tails = [len(tree.tokens) for tree in trees]
            if self.prefix_keys_only:  # the prefixes' ends aligned, then the tails
                width = max(rests) + max(tails)
            else:
                width = max(r + t for r, t in zip(rests, tails))
            if self.window is None or header_len + width <= self.window:
                return self._score_packed(contexts, requests, trees, header_len, header_cache)
            if self.layout == "packed":
                raise ValueError(
                    f"hf-fast: a packed row of {header_len + width} tokens exceeds the sliding window "
                    f"({self.window}); use layout=auto"
                )
        return self._score_cached(contexts, requests, header_len, header_cache)

    def _score_packed(
        self, contexts, requests, trees, header_len, header_cache
    ) -> list[tuple[int, float, bool]]:
        with record_function("hf_fast.inputs"):
            ids, mask, positions, scored, row_req, n_tokens, keep = self._packed_inputs(
                contexts, requests, trees, header_len, split=self.prefix_keys_only
            )
        with record_function("hf_fast.forward"):
            if self.prefix_keys_only:
                logits, head_positions = self._split_forward(
                    ids, mask, positions, header_len, header_cache, keep
                )
            else:
                logits, head_positions = self._packed_forward(
                    ids, mask, positions, header_len, header_cache, keep
                )
        self.stats.add(n_tokens, ids.numel(), head_positions)
        return self._scores(logits, scored, row_req)

    def _scores(self, logits, scored, row_req: list[int]) -> list[tuple[int, float, bool]]:
        """(request, log-likelihood, is_greedy) from the logits at the scored positions; `scored` holds
        (row, column, target token, request slot) per scored token, so requests may share a row."""
        with record_function("hf_fast.head"):
            row, col, target, who = (t.to(self.device) for t in scored)
            logprobs = F.log_softmax(logits[row, col], dim=-1, dtype=self.softmax_dtype)
            picked = logprobs.gather(1, target[:, None]).squeeze(1)
            misses = (logprobs.argmax(dim=-1) != target).to(torch.long)
            ll = torch.zeros(len(row_req), dtype=picked.dtype, device=self.device).index_add_(0, who, picked)
            wrong = torch.zeros(len(row_req), dtype=torch.long, device=self.device).index_add_(0, who, misses)
            return [(r, lj, wj == 0) for r, lj, wj in zip(row_req, ll.tolist(), wrong.tolist())]

    def _packed_forward(self, ids, mask, positions, header_len: int, header_cache, keep: int):
        """Logits of the last `keep` columns of one pass over the packed rows. Under SDPA the attention
        runs in query chunks (see `chunked_attention`); other attention runs the rows whole."""
        n_ctx, width = ids.shape
        cache = header_copy(header_cache, n_ctx) if header_cache is not None else None
        chunk = resolve_chunk_tokens(self.chunk_tokens) if self.chunks_queries else 0
        with query_chunks(self.base, chunk):
            logits = self._forward(ids, self._as_attention_mask(mask), positions, cache, keep=keep)
        return logits[:, -keep:], logits.shape[0] * logits.shape[1]

    def _split_forward(self, ids, mask, positions, header_len: int, header_cache, keep: int):
        """The packed pass in two: the prefixes (every column but the last `keep`) run up to the last
        layer's keys and values only, since no logit is read there; the tails then run through every
        layer on that cache. The last layer's output projection, MLP and attention are computed for the
        scored positions alone."""
        n_ctx, width = ids.shape
        split = width - keep
        cache = header_copy(header_cache, n_ctx) if header_cache is not None else self._new_cache()
        mask = self._as_attention_mask(mask)
        if split:
            end = header_len + split
            self._prefix_forward(ids[:, :split], mask[:, :, :split, :end], positions[:, :split], cache)
        with query_chunks(self.base, resolve_chunk_tokens(self.chunk_tokens)):
            logits = self._forward(ids[:, split:], mask[:, :, split:], positions[:, split:], cache, keep=keep)
        return logits[:, -keep:], logits.shape[0] * logits.shape[1]

    def _as_attention_mask(self, visible: torch.Tensor) -> torch.Tensor:
        # Eager attention adds the mask. SDPA takes a bool mask too, but its CPU kernels turn it into an
        # additive one in every layer; one additive mask per pass does that work once (under autocast
        # the query dtype is not known here, so the bool mask stays).
        if not self.eager_mask and self.autocast_dtype is not None:
            return visible
        return additive_mask(visible, getattr(self.base, "dtype", torch.float32))

    def _packed_inputs(self, contexts, requests, trees, header_len, split: bool = False):
        """The packed batch's ids, mask, positions and scored columns; `trees`: each context's tail tree."""
        rests = [c.prefix[header_len:] for c in contexts]
        totals = [len(rest) + len(tree.tokens) for rest, tree in zip(rests, trees)]
        n_ctx, keep = len(contexts), max(len(tree.tokens) for tree in trees)
        # Rows are right-aligned (all padding on the left), so a row pads only to the longest row, and
        # the last `keep` positions hold every row's tails. Split rows align the prefixes' ends instead
        # (the tails start at one column, padded on the right), so the prefixes can run as a pass of their
        # own.
        prefix_width = max(len(rest) for rest in rests)
        width = prefix_width + keep if split else max(totals)

        ids = torch.full((n_ctx, width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((n_ctx, width), dtype=torch.long)
        # Key j is visible to query q when j <= q and j is header, prefix or q's own tail so far; a pad
        # query sees only itself (a row with nothing visible would turn into NaNs that reach real
        # tokens). Built by slices of one triangle: a few copies per row, not passes over the mask.
        visible = torch.zeros((n_ctx, width, header_len + width), dtype=torch.bool)
        triangle = torch.ones((width, width), dtype=torch.bool).tril_()
        scored: list[tuple[int, int, int, int]] = []  # (row, kept column, target, request slot)
        row_req: list[int] = []
        for i, (ctx, rest, tree) in enumerate(zip(contexts, rests, trees)):
            offset = prefix_width if split else width - len(tree.tokens)  # the first tail node's column
            start = offset - len(rest)
            n = len(tree.tokens)
            pads = torch.cat([torch.arange(start), torch.arange(offset + n, width)])
            visible[i, pads, header_len + pads] = True
            visible[i, start:, :header_len] = True
            visible[i, start:, header_len + start : header_len + offset] = triangle[
                : width - start, : len(rest)
            ]
            lineage = torch.eye(n, dtype=torch.bool)  # node x sees node y: y is x or an ancestor of x
            for node, parent in enumerate(tree.parents):
                if parent >= 0:
                    lineage[node] |= lineage[parent]
            visible[i, offset : offset + n, header_len + offset : header_len + offset + n] = lineage
            if rest:
                ids[i, start:offset] = torch.tensor(rest)
                positions[i, start:offset] = torch.arange(header_len, header_len + len(rest))
            ids[i, offset : offset + n] = torch.tensor(tree.tokens)
            positions[i, offset : offset + n] = header_len + len(rest) + torch.tensor(tree.depths)
            first = offset - (width - keep)
            for r, path in zip(ctx.rows, tree.paths):
                scored += [(i, first + node, t, len(row_req)) for node, t in zip(path, requests[r].targets)]
                row_req.append(r)
        mask = visible[:, None].to(self.device)
        columns = torch.tensor(scored, dtype=torch.long).T
        return ids.to(self.device), mask, positions.to(self.device), columns, row_req, sum(totals), keep

    def _score_cached(
        self,
        contexts: Sequence[Context],
        requests: Sequence[Request],
        header_len: int = 0,
        header_cache=None,
    ) -> list[tuple[int, float, bool]]:
        dev = self.device
        n_ctx = len(contexts)
        prefix_range = record_function("hf_fast.forward")
        prefix_range.__enter__()
        rests = [c.prefix[header_len:] for c in contexts]
        rest_len = max(len(r) for r in rests)

        cache = header_copy(header_cache, n_ctx) if header_cache is not None else self._new_cache()
        prefix_mask = torch.zeros((n_ctx, header_len + rest_len), dtype=torch.long, device=dev)
        prefix_mask[:, :header_len] = 1
        if rest_len > 0:
            ids = torch.full((n_ctx, rest_len), self.pad_token_id, dtype=torch.long, device=dev)
            positions = torch.full((n_ctx, rest_len), header_len, dtype=torch.long, device=dev)
            for i, rest in enumerate(rests):
                if rest:
                    ids[i, rest_len - len(rest) :] = torch.tensor(rest, dtype=torch.long, device=dev)
                    positions[i, rest_len - len(rest) :] = torch.arange(
                        header_len, header_len + len(rest), device=dev
                    )
                    prefix_mask[i, header_len + rest_len - len(rest) :] = 1
            self._prefix_forward(ids, prefix_mask, positions, cache)
            self.stats.add(sum(len(r) for r in rests), ids.numel(), self._prefix_head_positions(ids))
        ctx_lengths = [header_len + len(r) for r in rests]
        prefix_range.__exit__(None, None, None)
        inputs_range = record_function("hf_fast.inputs")
        inputs_range.__enter__()

        # One row per distinct tail of a context, reading the context's cache row: choices whose tails
        # are equal (they differ in their last token only) are scored from one row.
        rows: dict[tuple[int, tuple[int, ...]], int] = {}
        scored: list[tuple[int, int, int, int]] = []  # (row, column, target, request slot)
        row_req: list[int] = []
        for ci, c in enumerate(contexts):
            for r in c.rows:
                j = rows.setdefault((ci, tuple(requests[r].tail)), len(rows))
                scored += [(j, k, t, len(row_req)) for k, t in enumerate(requests[r].targets)]
                row_req.append(r)
        row_ctx = [ci for ci, _ in rows]
        tails = [tail for _, tail in rows]
        select = torch.tensor(row_ctx, dtype=torch.long, device=dev)
        if header_len + rest_len > 0 and row_ctx != list(range(n_ctx)):
            cache.batch_select_indices(select)
        tail_len = max(len(t) for t in tails)
        n_rows = len(tails)
        ids = torch.full((n_rows, tail_len), self.pad_token_id, dtype=torch.long, device=dev)
        tail_mask = torch.zeros((n_rows, tail_len), dtype=torch.long, device=dev)
        positions = torch.zeros((n_rows, tail_len), dtype=torch.long, device=dev)
        for j, tail in enumerate(tails):
            ids[j, : len(tail)] = torch.tensor(tail, dtype=torch.long, device=dev)
            tail_mask[j, : len(tail)] = 1
            start = ctx_lengths[row_ctx[j]]
            positions[j] = torch.arange(start, start + tail_len, device=dev)
        mask = torch.cat([prefix_mask[select], tail_mask], dim=1)
        inputs_range.__exit__(None, None, None)
        with record_function("hf_fast.forward"):
            logits = self._forward(ids, mask, positions, cache)
        self.stats.add(sum(len(t) for t in tails), ids.numel(), ids.numel())
        return self._scores(logits, torch.tensor(scored, dtype=torch.long).T, row_req)
