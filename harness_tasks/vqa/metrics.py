"""What vqa_ppl reports: the per-doc record `VqaTask` emits, the facts of the run it belongs to, and
the corpus-level aggregations over the records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class RunInfo:
    """What decided every doc of one run (data, sample, policy, tokenizer), for the report metrics."""

    key: str  # digest of the deciding settings; also names the run's datasets cache
    language: str
    data_origin: str
    data_path: str
    data_sha256: str
    n_pairs_in_file: int
    sample: int | None
    sample_seed: int
    n_selected: int
    n_over_length: int  # among the selected pairs
    n_skipped: int  # over-length pairs left out (policy "skip")
    n_empty_answers: int  # scored pairs whose answer is empty: their figure is the EOS token's alone
    overlength_policy: str
    tokenizer: str
    pair_encoding: str
    add_bos_token: bool | None
    max_length: int
    eos_token: str

    def __str__(self) -> str:  # what a logged sample shows for its run
        return self.key

    def counting(self) -> str:
        return (
            f"tokenizer={self.tokenizer} add_bos_token={self.add_bos_token}; tokens as lm-eval's HF model "
            f"encodes (backend pair encoding: {self.pair_encoding}), prompt masked by len(tok(prompt)) as the paper; scored text answer+EOS "
            f"({self.eos_token}), EOS NLL in every figure; units: tokens incl. EOS, answer chars, UTF-8 "
            f"bytes, fugashi+unidic-lite words; over-length (input > {self.max_length}): {self.overlength_policy}"
        )

    def data(self) -> str:
        sample = "all" if self.sample is None else f"{self.sample} (seed {self.sample_seed})"
        return (
            f"{self.data_origin}: {self.data_path} sha256={self.data_sha256[:16]}; "
            f"pairs in file {self.n_pairs_in_file}; sample {sample}; selected {self.n_selected}; "
            f"over-length {self.n_over_length}; skipped {self.n_skipped}; empty answers {self.n_empty_answers}"
        )


class VqaRecord(NamedTuple):
    """One scored doc. `nll` is the summed negative log-likelihood (nats) of answer + EOS; `n_tokens`
    counts those tokens (EOS included); the char/byte/word counts are of the answer text."""

    run: RunInfo
    nll: float
    n_tokens: int
    n_chars: int
    n_bytes: int
    n_words: int
    truncated: bool
    exact: bool


def ppl_paper(items: Sequence[VqaRecord]) -> float:
    """The paper's figure: exp of the mean over examples of the per-example mean token NLL."""
    return math.exp(math.fsum(r.nll / r.n_tokens for r in items) / len(items))


def _nll_per(items: Sequence[VqaRecord], unit: str) -> float:
    units = sum(getattr(r, unit) for r in items)
    return math.fsum(r.nll for r in items) / units if units else math.nan


def ppl_token(items: Sequence[VqaRecord]) -> float:
    """exp(total NLL / total scored tokens): the corpus micro average."""
    return math.exp(_nll_per(items, "n_tokens"))


def ppl_char(items: Sequence[VqaRecord]) -> float:
    return math.exp(_nll_per(items, "n_chars"))


def bits_per_byte(items: Sequence[VqaRecord]) -> float:
    return _nll_per(items, "n_bytes") / math.log(2)


def ppl_word(items: Sequence[VqaRecord]) -> float:
    return math.exp(_nll_per(items, "n_words"))


def n_truncated(items: Sequence[VqaRecord]) -> int:
    """Scored examples whose prompt was left-truncated to fit the model."""
    return sum(r.truncated for r in items)


def n_paper_inexact(items: Sequence[VqaRecord]) -> int:
    """Scored examples where the tokenizer merges across the prompt/answer boundary (see counting.py)."""
    return sum(not r.exact for r in items)


def _run(items: Sequence[VqaRecord]) -> RunInfo:
    # Records gathered from several processes hold equal copies of one run: compare by value.
    run = items[0].run if items else None
    if run is None or any(r.run is not run and r.run != run for r in items):
        raise RuntimeError(
            f"vqa_ppl: results mix or lack run descriptions: {sorted({str(r.run) for r in items})}"
        )
    return run


def n_over_length(items: Sequence[VqaRecord]) -> int:
    """Over-length pairs in the selected data (before --limit): truncated or skipped per the policy."""
    return _run(items).n_over_length


def n_skipped(items: Sequence[VqaRecord]) -> int:
    return _run(items).n_skipped


def n_empty_answers(items: Sequence[VqaRecord]) -> int:
    """Scored pairs with an empty answer (scored as EOS alone); in the data, before --limit."""
    return _run(items).n_empty_answers


def counting(items: Sequence[VqaRecord]) -> str:
    return _run(items).counting()


def data(items: Sequence[VqaRecord]) -> str:
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
