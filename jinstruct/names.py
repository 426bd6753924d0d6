"""Closest-name suggestions for typos: unknown config keys and unknown task names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(
    mapping: Mapping, known: Iterable[str], where: str, error: type[Exception] = ValueError
) -> None:
    """Refuse keys of `mapping` that are not in `known`, naming the place and the closest valid key."""
    known = sorted(known)
    unknown = [str(k) for k in mapping if k not in known]
    if unknown:
        hints = "; ".join(f"{k!r}{did_you_mean(k, known)}" for k in unknown)
        raise error(f"{where}: unknown key(s) {hints}; valid keys: {', '.join(known)}")


def our_task_names() -> tuple[str, ...]:
    """Every task and group name our task YAMLs define, from the task catalog."""
    from jinstruct.harness_tasks.catalog import task_catalog

    catalog = task_catalog()
    return tuple(sorted({*catalog.tasks, *catalog.groups}))


def task_hint(names: Iterable[str]) -> str:
    """A line suggesting the closest of our task names for each name given, or ''."""
    hints = [f"{n!r}{did_you_mean(n, our_task_names())}" for n in (s.strip() for s in names) if n]
    hints = [h for h in hints if "did you mean" in h]
    if not hints:
        return ""
    return "unknown task " + ", ".join(hints) + f". jinstruct's tasks: {', '.join(our_task_names())}"
