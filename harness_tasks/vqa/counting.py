"""How each VQA example is tokenized, masked, truncated and turned into two loglikelihood requests.

The paper scores `prompt + answer + EOS` in one forward pass and masks the first
`len(tokenize(prompt))` tokens. lm-eval 0.4 cannot express that in one request: its causal
`_encode_pair` first moves the context's trailing whitespace (the prompt's final "\\n") into the
continuation, then encodes context+continuation together and splits at `len(tokenize(context))`.
So a single request would also score the "\\n" token. We therefore issue two requests that share a
context `c` (the prompt minus its trailing newline):

    A = (c, rest + answer + EOS)   -> sum of log p over W[len(tok(c)):]   with W = tok(prompt+answer+EOS)
    B = (c, rest)                  -> sum of log p over P[len(tok(c)):]   with P = tok(prompt)

When tok(c) is a prefix of P and P is a prefix of W, both requests feed the model prefixes of the
same token sequence W, so `A - B` is exactly the paper's masked sum over W[len(P):]. The plan below
checks those prefix conditions with the model's own tokenizer, encoding exactly as lm-eval's HF
model does, and flags any example where they fail (`exact=False`, reported as `n_paper_inexact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

OVERLENGTH_POLICIES = ("truncate", "skip", "error")
# How many shorter cut points to try when the tokenizer merges the prompt's last characters.
_MAX_CUT_BACKOFF = 16


class OverLengthError(ValueError):
    """An example does not fit the model's maximum length under the chosen policy."""


@dataclass(frozen=True)
class ModelTokenizer:
    """The tokenizer lm-eval's HF model would load, plus how it encodes (its `tok_encode`)."""

    tokenizer: Any
    name: str
    add_bos_token: bool | None
    max_length: int
    # hf-fast's `tokenization` model arg: "lm_eval" (lm-eval's pair encoding, modelled here) or
    # "reference" (context and continuation encoded apart), under which A - B cannot be exact.
    pair_encoding: str = "lm_eval"

    def encode_kwargs(self) -> dict[str, bool]:
        # HFLM.tok_encode: add_special_tokens follows add_bos_token when set, else the tokenizer default.
        return {} if self.add_bos_token is None else {"add_special_tokens": bool(self.add_bos_token)}

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        out = self.tokenizer(
            list(texts), return_attention_mask=False, return_token_type_ids=False, **self.encode_kwargs()
        )
        return out["input_ids"]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    @property
    def eos_token(self) -> str:
        return self.tokenizer.eos_token

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id


def load_model_tokenizer(
    metadata: dict[str, Any],
    prefix: str = "vqa",
    purpose: str = "vqa_ppl counts tokens with the model's own tokenizer",
) -> ModelTokenizer:
    """Load the tokenizer named in the model args (lm-eval merges `--model_args` into task metadata).

    `<prefix>_tokenizer` overrides it (needed when lm-eval was given a model object, not model args);
    `<prefix>_max_length` overrides the maximum length (else `max_length`, else the model config, as
    lm-eval). `purpose` says in the error why the task needs the tokenizer.
    """
    name = metadata.get(f"{prefix}_tokenizer") or metadata.get("tokenizer") or metadata.get("pretrained")
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"{purpose} but found no tokenizer name. lm-eval passes --model_args (pretrained=..., "
            "tokenizer=...) to tasks as metadata; when it was given a model object instead, pass "
            f'--metadata \'{{"{prefix}_tokenizer": "<hub id or folder>", "{prefix}_max_length": 2048}}\'.'
        )
    add_bos = metadata.get("add_bos_token")
    kwargs = dict(
        revision=str(metadata.get("revision") or "main"),
        trust_remote_code=bool(metadata.get("trust_remote_code", False)),
        use_fast=bool(metadata.get("use_fast_tokenizer", True)),
        add_bos_token=add_bos,
        subfolder=str(metadata.get("subfolder") or ""),
    )
    tokenizer = _auto_tokenizer(name, tuple(sorted(kwargs.items())))
    max_length = metadata.get(f"{prefix}_max_length") or metadata.get("max_length")
    if not max_length:
        max_length = _model_max_length(
            str(metadata.get("pretrained") or name),
            kwargs["revision"],
            kwargs["trust_remote_code"],
            tokenizer,
        )
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {name} has no EOS token; vqa_ppl scores answer + EOS as the paper.")
    pair_encoding = str(metadata.get("tokenization") or "lm_eval")
    return ModelTokenizer(tokenizer, name, add_bos, int(max_length), pair_encoding)


@cache
def _auto_tokenizer(name: str, kwargs: tuple[tuple[str, Any], ...]):
    from transformers import AutoTokenizer

    kw = {k: v for k, v in kwargs if v is not None and v != ""}
    return AutoTokenizer.from_pretrained(name, **kw)


def _model_max_length(pretrained: str, revision: str, trust_remote_code: bool, tokenizer) -> int:
    """lm-eval's HFLM.max_length when no max_length is given: config fields, then the tokenizer."""
    from lm_eval.models.utils import DEFAULT_MAX_LENGTH, resolve_max_length
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            pretrained, revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError):
        config = None
    return resolve_max_length(config, tokenizer, default=DEFAULT_MAX_LENGTH)


@dataclass(frozen=True)
class RequestPlan:
    """What one example sends to the model and what its scored text counts as."""

    context: str  # request context, without trailing whitespace (so lm-eval moves nothing)
    rest: str  # the prompt text after `context` (normally "\n")
    target: str  # answer + EOS string
    n_tokens: int  # paper's scored tokens: len(W) - len(P), EOS included
    truncated: bool  # the prompt was left-truncated to fit
    exact: bool  # A - B equals the paper's masked NLL (prefix conditions hold)

    @property
    def continuation_full(self) -> str:
        return self.rest + self.target

    @property
    def continuation_rest(self) -> str:
        return self.rest


def _is_prefix(short: Sequence[int], long: Sequence[int]) -> bool:
    return len(short) <= len(long) and list(long[: len(short)]) == list(short)


def _prompt_split(prompt: str, p_ids: list[int], mt: ModelTokenizer) -> tuple[str, bool]:
    """The request context: the longest whitespace-free prefix of the prompt whose tokens prefix P.

    Normally the prompt minus its final newline. Returns (context, found); when no cut point keeps
    tok(context) a strict prefix of P, the prompt's rstrip is used and the example is inexact.
    """
    stripped = prompt.rstrip()
    candidates = [stripped]
    j = len(stripped) - 1
    while j > 0 and len(candidates) <= _MAX_CUT_BACKOFF:
        if not prompt[:j][-1].isspace():
            candidates.append(prompt[:j])
        j -= 1
    for cand in candidates:
        c_ids = mt.encode(cand)
        if len(c_ids) < len(p_ids) and _is_prefix(c_ids, p_ids):
            return cand, True
    return stripped, False


class _PromptCache:
    """P = tok(prompt) and the request context per distinct prompt (questions repeat a lot)."""

    def __init__(self, mt: ModelTokenizer, max_entries: int = 200_000):
        self.mt, self.max_entries = mt, max_entries
        self.entries: dict[str, tuple[tuple[int, ...], str, bool]] = {}

    def fill(self, prompts: Sequence[str]) -> None:
        new = [p for p in dict.fromkeys(prompts) if p not in self.entries]
        if len(self.entries) + len(new) > self.max_entries:
            self.entries.clear()  # bound memory; a miss only costs a re-encode
        p_all = self.mt.encode_batch(new)
        c_all = self.mt.encode_batch([p.rstrip() for p in new])
        for prompt, p_ids, c_ids in zip(new, p_all, c_all):
            if len(c_ids) < len(p_ids) and _is_prefix(c_ids, p_ids):
                context, found = prompt.rstrip(), True
            else:
                context, found = _prompt_split(prompt, p_ids, self.mt)
            self.entries[prompt] = (tuple(p_ids), context, found)

    def get(self, prompt: str) -> tuple[tuple[int, ...], str, bool]:
        if prompt not in self.entries:
            self.fill([prompt])
        return self.entries[prompt]


def prompt_cache(mt: ModelTokenizer) -> _PromptCache:
    return _PromptCache(mt)


def plan_requests(
    prompts: Sequence[str],
    answers: Sequence[str],
    mt: ModelTokenizer,
    policy: str = "truncate",
    rows: Sequence[int] | None = None,
    chunk_size: int = 8192,
    cache: _PromptCache | None = None,
) -> list[RequestPlan | None]:
    """A plan per example; `None` for an over-length example under policy "skip" (one of
    OVERLENGTH_POLICIES, checked where the task reads it from the metadata).

    Over-length means lm-eval would have to truncate: the model input W[:-1] is longer than
    `mt.max_length`. "truncate" drops characters from the start of the prompt until it fits (never
    the answer), "skip" leaves the example out (counted by the caller), "error" raises.
    Works through the data in chunks so that token ids never pile up in memory; a caller that streams
    its own chunks passes one `cache` (from `prompt_cache`) to all its calls.
    """
    from tqdm.auto import tqdm

    rows = list(range(len(prompts))) if rows is None else rows
    eos = mt.eos_token
    cache = cache or _PromptCache(mt)
    plans: list[RequestPlan | None] = []
    bar = tqdm(total=len(prompts), desc="vqa_ppl: tokenizing", unit="pair", disable=len(prompts) < 50_000)
    for start in range(0, len(prompts), chunk_size):
        chunk_prompts = prompts[start : start + chunk_size]
        targets = [a + eos for a in answers[start : start + chunk_size]]
        cache.fill(chunk_prompts)
        w_all = mt.encode_batch([p + t for p, t in zip(chunk_prompts, targets)])
        for k, (prompt, target, w_ids) in enumerate(zip(chunk_prompts, targets, w_all)):
            row = rows[start + k]
            plans.append(_plan_one(prompt, target, w_ids, cache, mt, policy, row))
        bar.update(len(chunk_prompts))
    bar.close()
    return plans


def _plan_one(
    prompt: str, target: str, w_ids: list[int], cache: _PromptCache, mt: ModelTokenizer, policy: str, row: int
) -> RequestPlan | None:
    if not w_ids or w_ids[-1] != mt.eos_token_id:
        raise ValueError(
            f"tokenizer {mt.name} does not encode the EOS string {mt.eos_token!r} as eos_token_id "
            f"{mt.eos_token_id} at the end of row {row}; vqa_ppl cannot score EOS as the paper."
        )
    truncated = False
    if len(w_ids) - 1 > mt.max_length:
        if policy == "skip":
            return None
        if policy == "error":
            raise OverLengthError(
                f"row {row}: prompt+answer+EOS is {len(w_ids)} tokens, over the maximum length "
                f'{mt.max_length} (+1). Fix: --metadata \'{{"vqa_overlength": "truncate"}}\' (left-'
                f'truncate the prompt) or "skip", or a larger max_length.'
            )
        prompt, w_ids = _left_truncate(prompt, target, mt, row)
        truncated = True
    p_ids, context, found = cache.get(prompt)
    if len(w_ids) <= len(p_ids):
        raise ValueError(
            f"row {row}: tokenizer {mt.name} gives prompt+answer+EOS no more tokens than the prompt alone "
            f"({len(w_ids)} <= {len(p_ids)}), so the paper's mask would score nothing."
        )
    return RequestPlan(
        context=context,
        rest=prompt[len(context) :],
        target=target,
        n_tokens=len(w_ids) - len(p_ids),
        truncated=truncated,
        exact=found and _is_prefix(p_ids, w_ids) and mt.pair_encoding == "lm_eval",
    )


def _left_truncate(prompt: str, target: str, mt: ModelTokenizer, row: int) -> tuple[str, list[int]]:
    """Drop the fewest leading prompt characters so that the model input fits; never the answer."""
    limit = len(prompt.rstrip()) - 1  # keep at least one visible character as the request context

    def fits(j: int) -> bool:
        return len(mt.encode(prompt[j:] + target)) - 1 <= mt.max_length

    if limit < 0 or not fits(limit):
        raise OverLengthError(
            f"row {row}: the answer + EOS alone exceed the maximum length {mt.max_length}; left-truncating "
            f'the prompt cannot help. Fix: --metadata \'{{"vqa_overlength": "skip"}}\' or a larger max_length.'
        )
    # fits(limit) holds and the token count falls (almost) monotonically as j grows: bisect for the
    # first j that fits, then step on should a non-monotone tokenization make the bisection overshoot.
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    while not fits(lo):
        lo += 1
    kept = prompt[lo:]
    return kept, mt.encode(kept + target)


@cache
def _tagger():
    import fugashi

    return fugashi.Tagger()  # finds unidic-lite


@lru_cache(maxsize=1 << 18)
def count_words(text: str) -> int:
    """MeCab words (fugashi + unidic-lite); punctuation counts as a word, whitespace does not."""
    return len(_tagger()(text)) if text else 0
