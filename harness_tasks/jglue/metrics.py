"""Classification metrics over (gold, pred) pairs, as the current reference reports them.

Each is one pass over the items: no bootstrap, so aggregating 5,654 MARC-ja docs costs nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef


def _score(metric, items: Iterable[tuple[int, int]], **kwargs) -> float:
    pairs = [(int(g), int(p)) for g, p in items]
    with warnings.catch_warnings():
        # sklearn warns on what these definitions cover: a class predicted but never gold, one class only.
        warnings.simplefilter("ignore")
        return float(metric([g for g, _ in pairs], [p for _, p in pairs], **kwargs))


def balanced_acc(items: Iterable[tuple[int, int]]) -> float:
    """Mean over the gold classes present of the per-class recall."""
    return _score(balanced_accuracy_score, items)


def macro_f1(items: Iterable[tuple[int, int]]) -> float:
    """Unweighted mean of per-class F1 over every class seen as gold or prediction."""
    return _score(f1_score, items, average="macro", zero_division=0.0)


def mcc(items: Iterable[tuple[int, int]]) -> float:
    """Matthews correlation, multiclass (Gorodkin's R_K); 0 where it is undefined."""
    return _score(matthews_corrcoef, items)


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
