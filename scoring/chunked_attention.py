"""SDPA over query chunks, for hf-fast's packed rows.

A packed row carries an explicit 4D mask (causal over the prefix, each choice's tail seeing the prefix
and itself), and under an explicit mask the attention kernel computes every query/key pair, the masked
upper triangle included, while the causal kernel of a plain forward skips it. Every mask hf-fast packs
is lower-triangular in column order (a query never sees a key to its right), so a chunk of queries
only needs the keys up to its own end: attention over query chunks drops most of the triangle inside
one forward pass, leaving the linear layers at full width (chunking whole forward passes instead
costs a thread synchronisation per op and pass, which at several threads outweighed the gain).

Each chunk is transformers' own `sdpa_attention_forward` on a slice, so whatever it does (grouped
heads, position bias, scaling) applies unchanged; the keys a chunk leaves out are masked for all of
its queries, so only the summation order differs from one call. The switch works only for models
whose attention modules look their function up by name in transformers' attention interface
(`_supports_attention_backend`); kv_scoring uses it for those alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

import torch

NAME = "jinstruct_query_chunked_sdpa"
_CHUNK: ContextVar[int] = ContextVar("hf_fast_query_chunk", default=0)
_STOP_LAYER: ContextVar[int | None] = ContextVar("hf_fast_stop_layer", default=None)
_registered = False


class KeysWritten(Exception):
    """Raised by the attention of the layer `query_chunks` was told to stop at: the layer has written
    its keys and values to the cache, and nothing after them is wanted."""


def _query_chunked_sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    stop = _STOP_LAYER.get()
    if stop is not None and getattr(module, "layer_idx", None) == stop:
        raise KeysWritten

    chunk, q_len = _CHUNK.get(), query.shape[2]
    if not chunk or q_len <= chunk or attention_mask is None or attention_mask.dim() != 4:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    cached = key.shape[2] - q_len  # keys before the first query: a shared header's cache
    outputs = []
    for start in range(0, q_len, chunk):
        end = min(start + chunk, q_len)
        out, _ = sdpa_attention_forward(
            module,
            query[:, :, start:end],
            key[:, :, : cached + end],
            value[:, :, : cached + end],
            attention_mask[:, :, start:end, : cached + end],
            **kwargs,
        )
        outputs.append(out)  # (batch, queries, heads, dim)
    return torch.cat(outputs, dim=1), None


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _query_chunked_sdpa)
    # hf-fast always passes a ready 4D mask, which mask creation returns as it is; the entry only keeps
    # a model that looks the mask function up by name from failing.
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


def _configs(model) -> list:
    config = model.config
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    return [config] if text is config else [config, text]


@contextmanager
def query_chunks(model, chunk: int, stop_layer: int | None = None) -> Iterator[None]:
    """While active, `model`'s SDPA layers attend in query chunks of `chunk` (its config is switched to
    the chunked implementation and back; the model must be using `sdpa`). With `stop_layer`, the
    attention of that layer raises `KeysWritten` instead of attending: its keys and values are cached,
    and the rest of the pass is skipped."""
    if chunk <= 0 and stop_layer is None:
        yield
        return
    _register()
    configs = _configs(model)
    saved = [c._attn_implementation_internal for c in configs]
    token = _CHUNK.set(max(chunk, 0))
    stop_token = _STOP_LAYER.set(stop_layer)
    try:
        for c in configs:  # the internal field: the public setter would rewrite every sub-config too
            c._attn_implementation_internal = NAME
        yield
    finally:
        for c, value in zip(configs, saved):
            c._attn_implementation_internal = value
        _CHUNK.reset(token)
        _STOP_LAYER.reset(stop_token)


def swaps_attention(model) -> bool:
    """Whether `query_chunks` reaches `model`'s attention: SDPA models whose attention modules look their
    function up in transformers' attention interface (some, such as Falcon, test for "sdpa" by name
    and would take their eager branch instead)."""
    sdpa = getattr(model.config, "_attn_implementation", None) == "sdpa"
    return sdpa and bool(getattr(model, "_supports_attention_backend", False))


def last_layer(model) -> int | None:
    """The index of `model`'s last layer where a pass can stop at that layer's keys and values (`keys_only`):
    models whose attention `query_chunks` reaches; None for the others."""
    if not swaps_attention(model):
        return None
    layers = getattr(_configs(model)[-1], "num_hidden_layers", None)
    return layers - 1 if layers else None


@contextmanager
def keys_only(model, stop_layer: int | None, chunk: int = 0) -> Iterator[None]:
    """A forward pass inside this block ends once layer `stop_layer` has cached its keys and values: for
    tokens whose logits nobody reads, the rest of that layer (attention, output projection, MLP) and the
    head are not needed. The pass then returns nothing; its cache is what it is for. With `stop_layer`
    None (`last_layer` found no way to stop) the pass runs whole, as it would outside the block."""
    if stop_layer is None:
        yield
        return
    with query_chunks(model, chunk, stop_layer=stop_layer), suppress(KeysWritten):
        yield
