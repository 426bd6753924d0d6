"""Classification metrics over (gold, pred) pairs, as the current reference reports them.

Each is one pass over the items: no bootstrap, so aggregating 5,654 MARC-ja docs costs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable


def _pairs(items: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(int(g), int(p)) for g, p in items]


def balanced_acc(items: Iterable[tuple[int, int]]) -> float:
    """Mean over the gold classes present of the per-class recall."""
    pairs = _pairs(items)
    support = Counter(g for g, _ in pairs)
    hits = Counter(g for g, p in pairs if g == p)
    return sum(hits[c] / n for c, n in support.items()) / len(support)


def macro_f1(items: Iterable[tuple[int, int]]) -> float:
    """Unweighted mean of per-class F1 over every class seen as gold or prediction."""
    pairs = _pairs(items)
    classes = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    f1s = []
    for c in classes:
        tp = sum(1 for g, p in pairs if g == c and p == c)
        fp = sum(1 for g, p in pairs if g != c and p == c)
        fn = sum(1 for g, p in pairs if g == c and p != c)
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


def mcc(items: Iterable[tuple[int, int]]) -> float:
    """Matthews correlation, multiclass (Gorodkin's R_K); 0 where it is undefined."""
    pairs = _pairs(items)
    n = len(pairs)
    correct = sum(1 for g, p in pairs if g == p)
    gold_counts = Counter(g for g, _ in pairs)
    pred_counts = Counter(p for _, p in pairs)
    classes = set(gold_counts) | set(pred_counts)
    cov_gp = correct * n - sum(pred_counts[c] * gold_counts[c] for c in classes)
    cov_pp = n * n - sum(v * v for v in pred_counts.values())
    cov_gg = n * n - sum(v * v for v in gold_counts.values())
    if cov_pp == 0 or cov_gg == 0:
        return 0.0
    return cov_gp / math.sqrt(cov_pp * cov_gg)


AGGREGATIONS = {"jglue_balanced_acc": balanced_acc, "jglue_macro_f1": macro_f1, "jglue_mcc": mcc}


def _passthrough(items):
    return items


def register_with_lm_eval() -> None:
    """Make the metric names known to lm-eval, so it never looks them up on the hub (HF evaluate)."""
    import lm_eval.api.metrics  # noqa: F401  the built-ins first: the registry fills itself only while empty
    from lm_eval.api import registry

    for name, fn in AGGREGATIONS.items():
        registry.aggregation_registry.register(name, target=fn)
    for metric in ("balanced_acc", "macro_f1"):
        registry.metric_registry.register(metric, target=_passthrough)
        registry.higher_is_better_registry.register(metric, target=True)
        registry.metric_agg_registry.register(metric, target=AGGREGATIONS[f"jglue_{metric}"])
