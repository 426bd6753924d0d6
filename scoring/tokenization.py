"""How a (context, continuation) pair becomes tokens, in the two ways users need.

- ``"lm_eval"`` (the default): lm-eval 0.4's ``HFLM``. Trailing spaces of the context move to the
  continuation, context+continuation is encoded as one string with the tokenizer's default special
  tokens, and the continuation is what follows the separately encoded context. An empty context
  becomes the prefix token (BOS, else EOS).
- ``"reference"``: the reference harness (Stability-AI lm-evaluation-harness, jp-stable, ``hf-causal``).
  Context and continuation are encoded separately with ``add_special_tokens=False`` and concatenated;
  an empty context becomes ``[eos_token_id]``. With SentencePiece tokenizers the two modes can give a
  different continuation (a separately encoded continuation gets a leading "▁"), hence both.

Tasks that need the number of scored tokens (e.g. a per-token perplexity) can call
``continuation_token_count`` with the same mode as the model so the counts agree.
"""

from __future__ import annotations

from typing import Literal

TOKENIZATION_MODES = ("lm_eval", "reference")
Tokenization = Literal["lm_eval", "reference"]


def check_mode(mode: str) -> str:
    """Normalise a `tokenization=` model argument, refusing unknown values with the fix."""
    aliases = {"default": "lm_eval", "lm-eval": "lm_eval", "lm_eval": "lm_eval", "reference": "reference"}
    key = str(mode).strip().lower()
    if key not in aliases:
        raise ValueError(
            f"tokenization={mode!r} is not known; use tokenization=lm_eval (lm-eval 0.4, the default) "
            "or tokenization=reference (the jp-stable reference harness: separate encoding, no special tokens)"
        )
    return aliases[key]


def _prefix_token_id(tokenizer, prefix_token_id: int | None) -> int:
    # Mirrors HFLM.prefix_token_id: an explicit id, else BOS, else EOS.
    if prefix_token_id is not None:
        return prefix_token_id
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    return tokenizer.eos_token_id


def _encode_lm_eval(
    tokenizer, text: str, add_bos_token: bool | None, prefix_token_id: int | None
) -> list[int]:
    # Mirrors HFLM.tok_encode(text) with add_special_tokens left unset.
    kwargs = {} if add_bos_token is None else {"add_special_tokens": add_bos_token}
    bos_text = tokenizer.decode(_prefix_token_id(tokenizer, prefix_token_id))
    if bos_text and text.startswith(bos_text):
        kwargs["add_special_tokens"] = False
    return tokenizer.encode(text, **kwargs)


def encode_pair(
    tokenizer,
    context: str,
    continuation: str,
    mode: str = "lm_eval",
    add_bos_token: bool | None = None,
    prefix_token_id: int | None = None,
) -> tuple[list[int], list[int]]:
    """The (context tokens, continuation tokens) a causal model scores, before truncation."""
    mode = check_mode(mode)
    if mode == "reference":
        context_enc = (
            [tokenizer.eos_token_id] if context == "" else tokenizer.encode(context, add_special_tokens=False)
        )
        return context_enc, tokenizer.encode(continuation, add_special_tokens=False)

    if context == "":
        continuation_enc = tokenizer.encode(continuation, add_special_tokens=False)
        prefix = _prefix_token_id(tokenizer, prefix_token_id)
        if continuation_enc and continuation_enc[0] == prefix:
            return continuation_enc[:1], continuation_enc[1:]
        return [prefix], continuation_enc

    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _encode_lm_eval(tokenizer, context + continuation, add_bos_token, prefix_token_id)
    context_enc = _encode_lm_eval(tokenizer, context, add_bos_token, prefix_token_id)
    return context_enc, whole[len(context_enc) :]


def continuation_token_count(
    tokenizer,
    context: str,
    continuation: str,
    mode: str = "lm_eval",
    add_bos_token: bool | None = None,
) -> int:
    """How many tokens of `continuation` the model scores for this request (no truncation assumed)."""
    return len(encode_pair(tokenizer, context, continuation, mode=mode, add_bos_token=add_bos_token)[1])
