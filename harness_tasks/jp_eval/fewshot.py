"""The reference's few-shot stream with its over-length retry (MGSM, JAQKET v2).

As for JNLI (jinstruct.harness_tasks.jglue.fewshot), the evaluated docs are shuffled with `Random(42)`
and every doc's shots are drawn from that same stream in shuffled order. MGSM and JAQKET add a retry:
when the prompt with k shots does not fit, the task builds it again with k-1 shots, *drawing again*
from the stream; every failed attempt therefore shifts the shots of all later docs. Replaying that
needs the model's tokenizer and the whole split, not only the docs a `--limit` run scores.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jinstruct.harness_tasks.jglue.fewshot import REFERENCE_SEED


@dataclass(frozen=True)
class RetryDraw:
    """The shots a doc ended with (None: not even 0 shots fit) and the shot counts tried before."""

    shots: list[int] | None
    failed_attempts: tuple[int, ...]  # shot counts that did not fit, in order


def replay_with_retry(
    n_eval: int,
    n_pool: int,
    k: int,
    fits: Callable[[int, Sequence[int]], bool],
    seed: int = REFERENCE_SEED,
) -> list[RetryDraw]:
    """Per eval doc (dataset order): the pool indices the reference shows after its over-length retry.

    `fits(doc_index, shots)` says whether that doc's prompt with those shots fits the model. A draw of
    0 shots takes nothing from the stream (the reference skips sampling then).
    """
    rnd = random.Random()
    rnd.seed(seed)
    order = list(range(n_eval))
    rnd.shuffle(order)
    draws: list[RetryDraw | None] = [None] * n_eval
    pool = range(n_pool)
    for doc in order:
        failed: list[int] = []
        shots: list[int] | None = None
        for n in range(k, -1, -1):
            candidate = rnd.sample(pool, n) if n > 0 else []
            if fits(doc, candidate):
                shots = candidate
                break
            failed.append(n)
        draws[doc] = RetryDraw(shots, tuple(failed))
    return draws  # type: ignore[return-value]
