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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


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
    requests: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    decode_steps: int = 0


def _forward(model, kwargs: dict, ids, mask, positions, cache):
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs(cache))
    return out.logits[:, -1, :]


def _call_kwargs(model):
    """How this model takes a cache and whether it can skip the head on all but the last position."""
    import inspect

    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    params = inspect.signature(base.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return base, lambda cache: {cache_kw: cache, **extra}


def greedy_batch(
    model, requests: Sequence[GenerationRequest], pad_token_id: int, device, stats: GenerationStats
) -> list[list[int]]:
    """Greedy tokens for each request (its stop token included, as `generate` returns it)."""
    from transformers import DynamicCache

    base, kwargs = _call_kwargs(model)
    lengths = [len(r.context) for r in requests]
    width = max(lengths)
    n = len(requests)
    ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    for i, r in enumerate(requests):
        ids[i, width - lengths[i] :] = torch.tensor(r.context, dtype=torch.long)
        mask[i, width - lengths[i] :] = 1
        positions[i, width - lengths[i] :] = torch.arange(lengths[i])
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
    cache = DynamicCache(config=base.config)
    out: list[list[int]] = [[] for _ in requests]
    active = list(range(n))  # request index of each cache row
    next_pos = torch.tensor(lengths, dtype=torch.long, device=device)
    limit = [r.max_new_tokens for r in requests]
    stats.batches += 1
    stats.prompt_tokens += sum(lengths)
    with torch.no_grad():
        logits = _forward(model, kwargs, ids, mask, positions, cache)
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


def generate_reference(
    model,
    tokenizer,
    requests: Sequence[GenerationRequest],
    batch_size: int,
    pad_token_id: int,
    device,
    stats: GenerationStats,
    on_done=None,
) -> list[str]:
    """Texts for every request (in the given order), batched by context length, longest first."""
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context))
    texts: list[str | None] = [None] * len(requests)
    size = max(1, int(batch_size))
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        tokens = greedy_batch(model, [requests[i] for i in chunk], pad_token_id, device, stats)
        for i, toks in zip(chunk, tokens):
            texts[i] = cut_at_until(tokenizer.decode(toks), requests[i].until)
            if on_done is not None:
                on_done(i, texts[i])
    return texts  # type: ignore[return-value]
