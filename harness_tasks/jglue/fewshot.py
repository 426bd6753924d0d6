"""The reference harness's few-shot draw, replayed exactly (docs/jglue-tasks.md in the jinstruct sources).

The reference shuffles the evaluated docs with `Random(42)` and then draws every doc's shots from
that same stream, doc after doc in shuffled order. The shots of a doc therefore depend on the whole
split, not on the doc alone: the replay runs over the full split once per shot count and answers
by the doc's position in dataset order, so `--limit` and data-parallel ranks see the prompts of a
full run. `random.shuffle` and `random.sample` depend only on the length of their input, so the
replay works on indices.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from lm_eval.api.samplers import ContextSampler

REFERENCE_SEED = 42


class FewShotPoolError(ValueError):
    """More shots asked for than the few-shot pool can give."""


def stratified_counts(group_sizes: Sequence[int], k: int) -> list[int]:
    """Shots per label group: proportional share rounded down, the rest to the smallest groups."""
    total = sum(group_sizes)
    counts = [int(size / total * k) for size in group_sizes]
    while sum(counts) < k:
        counts[counts.index(min(counts))] += 1
    return counts


def label_groups(targets: Sequence[Any]) -> list[list[int]]:
    """Indices of the pool grouped by target, groups in order of first appearance."""
    groups: dict[Any, list[int]] = {}
    for i, target in enumerate(targets):
        groups.setdefault(target, []).append(i)
    return list(groups.values())


def replay_shots(
    n_eval: int,
    pool_targets: Sequence[Any],
    k: int,
    stratified: bool = False,
    seed: int = REFERENCE_SEED,
) -> list[list[int]]:
    """Pool indices of the k shots of each eval doc, indexed by the doc's position in dataset order."""
    rnd = random.Random()
    rnd.seed(seed)
    order = list(range(n_eval))
    rnd.shuffle(order)
    pool = range(len(pool_targets))
    groups = label_groups(pool_targets) if stratified else []
    counts = stratified_counts([len(g) for g in groups], k) if stratified else []
    short = [f"{n} from a label group of {len(g)}" for g, n in zip(groups, counts) if n > len(g)]
    if k > len(pool) or short:
        raise FewShotPoolError(
            f"{k} shots need at least {k} examples in the few-shot pool, which holds {len(pool)}"
            + (f" (stratified draw: {', '.join(short)})" if short else "")
        )
    shots: list[list[int]] = [[] for _ in range(n_eval)]
    for doc in order:
        if k == 0:
            continue
        if stratified:
            drawn: list[int] = []
            for group, n in zip(groups, counts):
                drawn += rnd.sample(group, n)
            rnd.shuffle(drawn)
        else:
            drawn = rnd.sample(pool, k)
        shots[doc] = drawn
    return shots


class ReferenceReplaySampler(ContextSampler):
    """lm-eval sampler that returns the reference's shots for the doc being prompted.

    lm-eval does not tell a sampler which doc the shots are for when the pool is another split, so
    the task sets `eval_doc_index` right before it asks (see JGLUETask.fewshot_context).
    """

    def __init__(self, df=None, *, rnd=None, **kwargs) -> None:
        super().__init__(df, rnd=rnd, **kwargs)
        self.n_eval: int | None = None
        self.pool_targets: list[Any] = []
        self.stratified = False
        self.eval_doc_index: int | None = None
        self._replays: dict[int, list[list[int]]] = {}

    def configure(
        self,
        n_eval: int,
        pool_targets: Sequence[Any],
        stratified: bool,
        task: str = "?",
        pool_name: str = "train",
    ) -> None:
        self.n_eval, self.pool_targets, self.stratified = n_eval, list(pool_targets), stratified
        self.task, self.pool_name = task, pool_name
        self._replays.clear()

    def shots_for(self, doc_index: int, k: int) -> list[int]:
        if self.n_eval is None:
            raise RuntimeError("ReferenceReplaySampler.configure() was not called")
        if k not in self._replays:
            try:
                self._replays[k] = replay_shots(self.n_eval, self.pool_targets, k, self.stratified)
            except FewShotPoolError as err:
                raise FewShotPoolError(
                    f"task {self.task}: --num_fewshot {k} is too many: {err} (the {self.pool_name!r} split). "
                    f"Lower --num_fewshot to at most {len(self.pool_targets)}, or give a larger train file "
                    "(metadata train_file / data_dir)"
                ) from None
        return self._replays[k][doc_index]

    def sample(self, n: int, eval_doc=None, df=None, **kwargs) -> list[dict[str, Any]]:
        if self.eval_doc_index is None:
            raise RuntimeError("the reference few-shot replay needs the index of the doc being prompted")
        docs = self.fewshot_docs()
        return [docs[i] for i in self.shots_for(self.eval_doc_index, n)]
