"""Corpus-level aggregations of the per-doc records that `task.process_results` emits.

A record is (run, nll, n_tokens, n_chars, n_bytes, n_words, truncated, exact); `nll` is the summed
negative log-likelihood (nats) of answer + EOS, `n_tokens` counts those tokens (EOS included) and the
char/byte/word counts are of the answer text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Record = tuple[str, float, int, int, int, int, bool, bool]


def ppl_paper(items: Sequence[Record]) -> float:
    """The paper's figure: exp of the mean over examples of the per-example mean token NLL."""
    return math.exp(math.fsum(r[1] / r[2] for r in items) / len(items))


def _per(items: Sequence[Record], index: int) -> float:
    units = sum(r[index] for r in items)
    return math.fsum(r[1] for r in items) / units if units else math.nan


def ppl_token(items: Sequence[Record]) -> float:
    """exp(total NLL / total scored tokens): the corpus micro average."""
    return math.exp(_per(items, 2))


def ppl_char(items: Sequence[Record]) -> float:
    return math.exp(_per(items, 3))


def bits_per_byte(items: Sequence[Record]) -> float:
    return _per(items, 4) / math.log(2)


def ppl_word(items: Sequence[Record]) -> float:
    return math.exp(_per(items, 5))


def n_truncated(items: Sequence[Record]) -> int:
    """Scored examples whose prompt was left-truncated to fit the model."""
    return sum(r[6] for r in items)


def n_paper_inexact(items: Sequence[Record]) -> int:
    """Scored examples where the tokenizer merges across the prompt/answer boundary (see counting.py)."""
    return sum(not r[7] for r in items)


def _run(items: Sequence[Record]):
    from .task import RUNS

    keys = {r[0] for r in items}
    if len(keys) != 1 or next(iter(keys)) not in RUNS:
        raise RuntimeError(f"vqa_ppl: results mix or lack run descriptions: {sorted(keys)}")
    return RUNS[next(iter(keys))]


def n_over_length(items: Sequence[Record]) -> int:
    """Over-length pairs in the selected data (before --limit): truncated or skipped per the policy."""
    return _run(items).n_over_length


def n_skipped(items: Sequence[Record]) -> int:
    return _run(items).n_skipped


def n_empty_answers(items: Sequence[Record]) -> int:
    """Scored pairs with an empty answer (scored as EOS alone); in the data, before --limit."""
    return _run(items).n_empty_answers


def counting(items: Sequence[Record]) -> str:
    return _run(items).counting()


def data(items: Sequence[Record]) -> str:
    return _run(items).data()


METRIC_NAMES = (
    "ppl_paper",
    "ppl_token",
    "ppl_char",
    "bits_per_byte",
    "ppl_word",
    "n_over_length",
    "n_truncated",
    "n_skipped",
    "n_paper_inexact",
    "n_empty_answers",
    "counting",
    "data",
)
