"""Greedy generation under the reference harness's rules, batched.

The reference (jp-stable `BaseLM.greedy_until` with `models/gpt2.py`) runs one request at a time:
the context is encoded without special tokens and sliced `[max_gen_toks - max_length:]`, generation is
greedy and stops on the *last token of* `encode(until[0])` (EOS when that is empty) or after
`max_gen_toks` tokens, the new tokens are decoded without skipping special tokens, and the text is
cut at the first occurrence of every `until` string in turn.

Here the same rules run on many requests at once: requests are sorted by context length, each batch
is left-padded with a 2D padding mask and explicit position ids (so every token sits at the position
it has when run alone), every row stops on its own stop token and its own `max_gen_toks`, and a row
that has stopped leaves the batch (its cache rows are dropped) so finished rows cost nothing.

A few-shot prompt repeats its instruction and examples in every doc. Contexts that share such a
header (at least `min_shared` tokens, always leaving the last context token outside it: its logits
choose the first new token) form a group, planned as the scoring path plans its groups
(`plan.shared_runs`). The header runs once per group, one row at positions 0..H-1; each batch of the
group starts from a copy of its key/value cache repeated to the batch's rows and feeds `[pads][rest]`
under the mask `[ones(H) | row mask]`, positions going on from H. That is exact where the scoring
path's shared cache is (`kv_scoring.unsupported_reason`) and, under sliding-window attention, only
when header + longest rest + `max_gen_toks` fit in the window (the padding between header and rest
would otherwise shift what the window covers); such a group runs in full instead. A model that the
shared cache does not suit (state-space, prompt-learning adapters, chunked attention) is not batched
at all: each request runs the reference's own `generate` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from jinstruct.model_forward import base_model, cache_keyword, forward_params

from .chunked_attention import keys_only, last_layer
from .kv_scoring import header_copy, sliding_window_of
from .plan import plan_generation

if TYPE_CHECKING:
    from transformers import DynamicCache


@dataclass
class GenerationRequest:
    """One request reduced to what the decoding loop needs."""

    context: list[int]  # already truncated
    stop_id: int
    max_new_tokens: int
    until: list[str]


def reference_request(
    tokenizer, context: str, until: str | Sequence[str] | None, max_gen_toks: int, max_length: int
) -> GenerationRequest:
    """Encode, truncate and pick the stop token exactly as the reference's `greedy_until` does."""
    if isinstance(until, str):
        until = [until]
    until = list(until or [])
    primary = tokenizer.encode(until[0], add_special_tokens=False) if until else []
    stop_id = primary[-1] if primary else tokenizer.eos_token_id
    # The reference's own slice, kept verbatim: with max_gen_toks >= max_length it does not truncate
    # from the left as one might expect (0 keeps everything, a positive start drops the front).
    context_enc = tokenizer.encode(context, add_special_tokens=False)[max_gen_toks - max_length :]
    if not context_enc:
        # The reference would hand an empty tensor to generate(); give the model EOS to start from,
        # as its loglikelihood does for an empty context.
        context_enc = [tokenizer.eos_token_id]
    return GenerationRequest(context_enc, int(stop_id), int(max_gen_toks), until)


def cut_at_until(text: str, until: Sequence[str]) -> str:
    """The reference's post-processing: split on each `until` string in turn, keep the head."""
    for term in until:
        text = text.split(term)[0]
    return text


@dataclass
class GenerationStats:
    """What `generate_reference` did, summed over every call (for the log, the tests and the benchmark)."""

    requests: int = 0
    batches: int = 0
    prompt_tokens: int = 0  # context tokens fed to the model, a shared header once per group
    context_tokens: int = 0  # the requests' context tokens: what runs without header sharing
    generated_tokens: int = 0
    decode_steps: int = 0
    groups: int = 0  # groups of requests that shared a header
    header_tokens: int = 0  # header tokens run, once per group

    @property
    def saved_tokens(self) -> int:
        """Prompt tokens that header sharing did not feed again."""
        return self.context_tokens - self.prompt_tokens


def _forward(model, kwargs, ids, mask, positions, cache):
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs(cache))
    return out.logits[:, -1, :]


def _call_kwargs(model):
    """How this model takes a cache and whether it can skip the head on all but the last position."""
    base, params = base_model(model), forward_params(model)
    cache_kw = cache_keyword(params)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return base, lambda cache: {cache_kw: cache, **extra}


def run_header(model, header: Sequence[int], device, stats: GenerationStats) -> DynamicCache:
    """Keys and values of a header that every context of a group starts with (one row, positions
    0..H-1), for `greedy_batch` to copy into each of the group's batches."""
    from transformers import DynamicCache

    base, kwargs = _call_kwargs(model)
    cache = DynamicCache(config=base.config)
    ids = torch.tensor([list(header)], dtype=torch.long, device=device)
    positions = torch.arange(len(header), device=device).unsqueeze(0)
    with torch.no_grad(), keys_only(base, last_layer(base)):
        _forward(model, kwargs, ids, torch.ones_like(ids), positions, cache)
    stats.groups += 1
    stats.header_tokens += len(header)
    stats.prompt_tokens += len(header)
    return cache


def _prompt_inputs(rests: Sequence[Sequence[int]], header_len: int, pad_token_id: int, device):
    """Left-padded rows `[pads][rest]` (ids, positions) and their 2D mask `[ones(header) | row mask]`.

    Left padding keeps every real token at one index offset from the next, and the position ids go on
    from the header, so each row's tokens sit at the positions they have in an unpadded run. BLOOM,
    which ignores position ids, counts positions as the running sum of this mask: the same numbers."""
    width = max(len(rest) for rest in rests)
    n = len(rests)
    ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, header_len + width), dtype=torch.long)
    mask[:, :header_len] = 1
    positions = torch.zeros((n, width), dtype=torch.long)
    for i, rest in enumerate(rests):
        start = width - len(rest)
        ids[i, start:] = torch.tensor(list(rest), dtype=torch.long)
        mask[i, header_len + start :] = 1
        positions[i, start:] = torch.arange(header_len, header_len + len(rest))
    return ids.to(device), mask.to(device), positions.to(device)


def _prefill(model, base, kwargs, ids, mask, positions, cache):
    """The prompt's pass: logits at its last column. Where the model allows (`chunked_attention.last_layer`)
    the columns before it stop at the last layer's keys and values, and the last column runs alone."""
    stop = last_layer(base)
    if stop is None or ids.shape[1] < 2:
        return _forward(model, kwargs, ids, mask, positions, cache)
    with keys_only(base, stop):
        _forward(model, kwargs, ids[:, :-1], mask[:, :-1], positions[:, :-1], cache)
    return _forward(model, kwargs, ids[:, -1:], mask, positions[:, -1:], cache)


def greedy_batch(
    model,
    requests: Sequence[GenerationRequest],
    pad_token_id: int,
    device,
    stats: GenerationStats,
    header_len: int = 0,
    header_cache: DynamicCache | None = None,
) -> list[list[int]]:
    """Greedy tokens for each request (its stop token included, as `generate` returns it).

    With `header_cache` (from `run_header`), every context starts with those `header_len` tokens and
    only the rest of each is fed; the rest must hold at least the context's last token."""
    from transformers import DynamicCache

    base, kwargs = _call_kwargs(model)
    n = len(requests)
    rests = [r.context[header_len:] for r in requests]
    ids, mask, positions = _prompt_inputs(rests, header_len, pad_token_id, device)
    cache = header_copy(header_cache, n) if header_cache is not None else DynamicCache(config=base.config)
    out: list[list[int]] = [[] for _ in requests]
    active = list(range(n))  # request index of each cache row
    next_pos = torch.tensor([len(r.context) for r in requests], dtype=torch.long, device=device)
    limit = [r.max_new_tokens for r in requests]
    stats.batches += 1
    stats.prompt_tokens += sum(len(rest) for rest in rests)
    stats.context_tokens += sum(len(r.context) for r in requests)
    with torch.no_grad():
        logits = _prefill(model, base, kwargs, ids, mask, positions, cache)
        while True:
            # HF's greedy search takes the argmax of float32 logits; so do we.
            tokens = logits.float().argmax(dim=-1)
            stats.decode_steps += 1
            keep = []
            token_list = tokens.tolist()
            for j, r in enumerate(active):
                out[r].append(token_list[j])
                if token_list[j] != requests[r].stop_id and len(out[r]) < limit[r]:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                select = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(select)
                mask, tokens, next_pos = mask[select], tokens[select], next_pos[select]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            logits = _forward(model, kwargs, tokens[:, None], mask, next_pos[:, None], cache)
            next_pos = next_pos + 1
    stats.generated_tokens += sum(len(o) for o in out)
    stats.requests += n
    return out


def generate_one(model, request: GenerationRequest, device, stats: GenerationStats) -> list[int]:
    """The reference's own call, for models that batching or a shared cache would change (a state-space
    model's scan runs through left padding; prompt-learning adapters and chunked attention depend on
    absolute indices): one unpadded `generate` per request, the model's own cache and positions."""
    ids = torch.tensor([request.context], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_length=ids.shape[1] + request.max_new_tokens,
            eos_token_id=request.stop_id,
            pad_token_id=request.stop_id,
            do_sample=False,
        )
    new = out[0, ids.shape[1] :].tolist()
    stats.requests += 1
    stats.batches += 1
    stats.prompt_tokens += len(request.context)
    stats.context_tokens += len(request.context)
    stats.generated_tokens += len(new)
    stats.decode_steps += len(new)
    return new


def generate_reference(
    model,
    tokenizer,
    requests: Sequence[GenerationRequest],
    batch_size: int,
    pad_token_id: int,
    device,
    stats: GenerationStats,
    on_done: Callable[[int, str], None] | None = None,
    *,
    batched: bool = True,
    share_prefix: bool = True,
    min_shared: int = 16,
) -> list[str]:
    """Texts for every request (in the given order).

    `batched`: False for a model that `kv_scoring.unsupported_reason` rejects; each request then runs
    alone (`generate_one`). Otherwise requests that share a header of at least `min_shared` tokens
    (`share_prefix`) run it once per group and batch their rests on copies of its cache; the others
    batch in full. Batches hold `batch_size` requests of similar length, longest first."""
    texts: list[str | None] = [None] * len(requests)

    def finish(i: int, tokens: list[int]) -> None:
        texts[i] = cut_at_until(tokenizer.decode(tokens), requests[i].until)
        if on_done is not None:
            on_done(i, texts[i])

    if not batched:
        for i, req in enumerate(requests):
            finish(i, generate_one(model, req, device, stats))
        return texts  # type: ignore[return-value]

    base, _ = _call_kwargs(model)
    groups = plan_generation(
        [r.context for r in requests],
        [r.max_new_tokens for r in requests],
        share_prefix=share_prefix,
        min_shared=min_shared,
        window=sliding_window_of(base.config),
    )
    size = max(1, int(batch_size))
    for group in groups:
        header = requests[group.rows[0]].context[: group.header_len]
        header_cache = run_header(model, header, device, stats) if group.header_len else None
        for start in range(0, len(group.rows), size):
            chunk = group.rows[start : start + size]
            batch = [requests[i] for i in chunk]
            tokens = greedy_batch(model, batch, pad_token_id, device, stats, group.header_len, header_cache)
            for i, toks in zip(chunk, tokens):
                finish(i, toks)
        del header_cache  # one group's cache at a time
    return texts  # type: ignore[return-value]
