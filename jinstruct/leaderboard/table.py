"""The leaderboard as data: rows of models and reference rows, cells with stderr and markers, verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jinstruct.harness_tasks.catalog import most_common_version, task_catalog
from jinstruct.leaderboard.config import Column, ModelSpec, RunConfig, Suite, task_name
from jinstruct.leaderboard.settings import settings_digest, unit_settings
from jinstruct.leaderboard.store import Record, harness_version
from jinstruct.reference import PAPER_TABLE2 as REFERENCE_FILE

READING_MARK = "‡"  # a published cell that is our reading of a garbled source, not a quotation


@dataclass
class Cell:
    value: float | None = None  # scaled for display (the column's `scale`)
    stderr: float | None = None  # same scale
    over_train: int | None = None  # examples longer than the adapter's training sequence length
    over_max: int | None = None  # examples longer than the model's maximum length
    n: int | None = None
    task: str | None = None
    printed: str = ""  # a published cell's markers, as printed
    reading: bool = False  # a published cell read from a garbled source

    @property
    def markers(self) -> str:
        counted = ("*" if self.over_train else "") + ("†" if self.over_max else "")
        return counted + self.printed + (READING_MARK if self.reading else "")


@dataclass
class Row:
    name: str
    kind: str  # "model" or "reference"
    spec: ModelSpec | None
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""


@dataclass
class Verdict:
    base: str
    tuned: str
    lines: list[str]
    summary: str
    paper: str | None = None  # the paper's own conclusion, when this pair is one of the paper's


@dataclass
class Leaderboard:
    suite: Suite
    rows: list[Row]
    verdicts: list[Verdict]
    reference_source: str | None
    notes: list[str]
    reference_notes: list[str] = field(default_factory=list)


def _pick(
    records: list[Record],
    spec: ModelSpec,
    task: str,
    shots: int,
    limit: int | None,
    settings: str | None = None,
) -> Record | None:
    """The record for this cell; one computed under other settings than `settings` never stands in."""
    found = [
        r
        for r in records
        if r.key.model == spec.base_model
        and r.key.adapter == spec.adapter
        and r.key.task == task
        and r.key.shots == shots
        and r.key.limit == limit
        and r.key.settings in (None, settings)
    ]
    if not found:
        return None
    current = [r for r in found if r.key.harness == harness_version()]
    exact = [r for r in current if settings is not None and r.key.settings == settings]
    return (exact or current or found)[-1]


def _cell(record: Record | None, col: Column, task: str) -> Cell:
    if record is None or col.metric not in record.metrics:
        return Cell(task=task)
    se = record.stderr.get(col.metric)
    lengths = record.lengths or {}
    over_max = lengths.get("over_model_max")
    if over_max is None and "n_over_length" in record.metrics:
        # vqa_ppl counts over-length examples itself, so gathered results without samples keep their `†`.
        over_max = int(record.metrics["n_over_length"])
    return Cell(
        value=record.metrics[col.metric] * col.scale,
        stderr=se * col.scale if se is not None and math.isfinite(se) else None,
        over_train=lengths.get("over_train_seq_len"),
        over_max=over_max,
        n=lengths.get("n"),
        task=task,
    )


def specs_from_records(records: list[Record]) -> list[ModelSpec]:
    """Models for gathered results without a models file: one per (model, adapter), prompt version
    inferred from the task names found."""
    catalog = task_catalog()
    groups: dict[tuple[str, str | None], list[Record]] = {}
    for r in records:
        groups.setdefault((r.key.model, r.key.adapter), []).append(r)
    specs = []
    for (model, adapter), recs in groups.items():
        pv = most_common_version(r.key.task for r in recs) or "0.3"
        langs = {catalog.tasks[r.key.task].language for r in recs if r.key.task in catalog.tasks}
        lang = "en" if "en" in langs else "ja"
        names = {r.model_name for r in recs if r.model_name}
        name = names.pop() if len(names) == 1 else Path(adapter or model).name or model
        specs.append(
            ModelSpec(name=name, base_model=model, adapter=adapter, prompt_version=pv, vqa_language=lang)
        )
    return specs


def load_reference(path: Path | None = REFERENCE_FILE) -> tuple[list[dict[str, Any]], str | None]:
    return _read_reference(path)[:2]


def _read_reference(path: Path | None) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(rows, source, note on cells that are readings) of a reference file; nothing when there is none."""
    if path is None:
        return [], None, None
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"reference file {path} does not exist (give --reference none to leave it out)"
        )
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return list(raw.get("rows") or []), raw.get("source"), raw.get("reading_note")


def _reference_rows(ref_rows: list[dict[str, Any]], suite: Suite) -> list[Row]:
    rows = []
    for ref in ref_rows:
        row = Row(name=str(ref["name"]), kind="reference", spec=None, note=str(ref.get("prompt_version", "")))
        for col in suite.all_columns:
            for s in ref.get("scores") or []:
                if (
                    s.get("family") == col.family
                    and int(s.get("shots", 0)) == col.shots
                    and s.get("metric") == col.metric
                ):
                    # Published as the paper prints them (accuracy a fraction): the column's scale applies.
                    row.cells[col.key] = Cell(
                        value=float(s["value"]) * col.scale,
                        task="paper",
                        printed=str(s.get("markers", "")),
                        reading=bool(s.get("reading", False)),
                    )
        if row.cells:
            rows.append(row)
    return rows


def _fill_averages(row: Row, suite: Suite) -> None:
    """An `average` column: the plain mean of the row's other displayed figures, once all are there."""
    values = [row.cells.get(c.key, Cell()).value for c in suite.columns if not c.average]
    mean = sum(values) / len(values) if values and None not in values else None
    for col in suite.all_columns:
        if col.average:
            row.cells[col.key] = Cell(value=mean, task="mean")


def _same_adapter(ours: str | None, published: str | None) -> bool:
    """The paper's adapter, by hub id or by a local copy in a folder of the same name."""
    if not ours or not published:
        return False
    a, b = ours.rstrip("/").lower(), published.rstrip("/").lower()
    return a == b or Path(a).name == Path(b).name


def paper_conclusion(ref_rows: list[dict[str, Any]], tuned: ModelSpec) -> str | None:
    """What the paper concludes for the pair this tuned model belongs to (None: not one of the paper's)."""
    for ref in ref_rows:
        if ref.get("conclusion") and _same_adapter(tuned.adapter, ref.get("adapter")):
            pair = f"{ref['name']} vs {ref.get('base', 'its base model')}"
            return f"The paper, same pair ({pair}): " + " ".join(str(ref["conclusion"]).split()) + "."
    return None


def _fmt_delta(col: Column, b: Cell, t: Cell) -> tuple[str, int]:
    """A sentence on how one column moved, and +1 better / -1 worse / 0 unclear."""
    assert b.value is not None and t.value is not None
    if col.lower_is_better:
        if t.value <= 0 or b.value <= 0:
            return f"{b.value:.{col.decimals}f} → {t.value:.{col.decimals}f}", 0
        ratio = b.value / t.value
        word = "lower (better)" if ratio > 1 else "higher (worse)"
        factor = ratio if ratio > 1 else 1 / ratio
        return (
            f"{b.value:.{col.decimals}f} → {t.value:.{col.decimals}f} ({factor:.2f}× {word})",
            1 if ratio > 1 else (-1 if ratio < 1 else 0),
        )
    delta = t.value - b.value
    d = col.decimals
    text = f"{b.value:.{d}f} → {t.value:.{d}f} ({delta:+.{d}f}" + (" points" if col.scale == 100 else "")
    if b.stderr is not None and t.stderr is not None and (b.stderr > 0 or t.stderr > 0):
        z = delta / math.hypot(b.stderr, t.stderr)
        if abs(z) >= 1.96:
            text += f", beyond noise: {abs(z):.1f} combined standard errors)"
            return text, 1 if delta > 0 else -1
        text += f", within noise: {abs(z):.1f} combined standard errors)"
        return text, 0
    text += ", no standard error)"
    return text, (1 if delta > 0 else -1 if delta < 0 else 0)


def verdicts(
    rows: list[Row],
    pairs: list[tuple[ModelSpec, ModelSpec]],
    suite: Suite,
    ref_rows: list[dict[str, Any]] | None = None,
) -> list[Verdict]:
    by_name = {r.name: r for r in rows if r.kind == "model"}
    out = []
    for base, tuned in pairs:
        b_row, t_row = by_name.get(base.name), by_name.get(tuned.name)
        if b_row is None or t_row is None:
            continue
        lines, better, worse, flat = [], [], [], []
        for col in suite.columns:
            b, t = b_row.cells.get(col.key), t_row.cells.get(col.key)
            if col.average or not b or not t or b.value is None or t.value is None:
                continue
            text, sign = _fmt_delta(col, b, t)
            lines.append(f"{col.heading}: {text}")
            (better if sign > 0 else worse if sign < 0 else flat).append(col.heading)
        if not lines:
            continue
        parts = []
        if better:
            parts.append(f"better on {len(better)} ({', '.join(better)})")
        if worse:
            parts.append(f"worse on {len(worse)} ({', '.join(worse)})")
        if flat:
            parts.append(f"no clear change on {len(flat)} ({', '.join(flat)})")
        summary = f"{tuned.display} vs {base.display}: " + "; ".join(parts) + f", of {len(lines)} columns."
        if base.prompt_version != tuned.prompt_version:
            summary += (
                f" Note: the two use different JGLUE prompt versions ({base.prompt_version} vs "
                f"{tuned.prompt_version}), as the paper did."
            )
        out.append(
            Verdict(base.display, tuned.display, lines, summary, paper_conclusion(ref_rows or [], tuned))
        )
    return out


def order_models(specs: list[ModelSpec], pairs: list[tuple[ModelSpec, ModelSpec]]) -> list[ModelSpec]:
    """Each base model directly followed by its tuned models, so the pairs sit side by side."""
    tuned_of: dict[str, list[ModelSpec]] = {}
    paired = set()
    for b, t in pairs:
        tuned_of.setdefault(b.name, []).append(t)
        paired.add(t.name)
    out: list[ModelSpec] = []
    for s in specs:
        if s.name in paired:
            continue
        out.append(s)
        out += tuned_of.get(s.name, [])
    return out + [s for s in specs if s not in out]


def build(
    records: list[Record],
    suite: Suite,
    cfg: RunConfig | None,
    reference: Path | None = REFERENCE_FILE,
) -> Leaderboard:
    specs = cfg.models if cfg else specs_from_records(records)
    limit = cfg.limit if cfg else None
    settings = {s.name: settings_digest(unit_settings(s, cfg.metadata)) for s in specs} if cfg else {}
    if cfg is None:  # gathered results: pair by base model, keep whatever limit they were run with
        cfg = RunConfig(models=specs, source="gathered results")
        limits = {r.key.limit for r in records}
        limit = limits.pop() if len(limits) == 1 else None
    pairs = cfg.pairs()
    rows = []
    unmeasured: set[str] = set()
    for spec in order_models(specs, pairs):
        row = Row(name=spec.name, kind="model", spec=spec, note=spec.prompt_version)
        for col in suite.all_columns:
            if col.average:
                continue
            task = col.task_for(spec)
            record = _pick(records, spec, task, col.shots, limit, settings.get(spec.name))
            row.cells[col.key] = _cell(record, col, task)
            if record is not None and record.lengths is None:
                unmeasured.add(spec.name)
        _fill_averages(row, suite)
        rows.append(row)
    ref_rows, ref_source, reading_note = _read_reference(reference)
    rows += _reference_rows(ref_rows, suite)
    notes = []
    harnesses = sorted({r.key.harness for r in records})
    if harnesses:
        notes.append("harness: " + ", ".join(harnesses))
    if limit is not None:
        notes.append(
            f"every task was scored on its first {limit} documents only (--limit {limit}), not the full split"
        )
    catalog = task_catalog()
    for row in rows:
        ref_tasks = [
            catalog.tasks[c.task].reference_task for c in row.cells.values() if c.task in catalog.tasks
        ]
        if row.kind == "model" and any(ref_tasks):
            # Which reference versions ran (published 1.1 vs head 1.3 JNLI, ...): the suite's choice, named.
            notes.append(
                f"{row.name}: reference tasks " + ", ".join(dict.fromkeys(t for t in ref_tasks if t))
            )
    missing = [
        f"{row.name} {suite_col.heading}"
        for row in rows
        if row.kind == "model"
        for suite_col in suite.columns
        if row.cells[suite_col.key].value is None
    ]
    if missing:
        notes.append("not computed yet: " + ", ".join(missing))
    if unmeasured:
        notes.append(
            "markers could not be computed for "
            + ", ".join(sorted(unmeasured))
            + ": their results were gathered "
            "without per-example lengths (a blank marker there means unknown, not zero); score them with "
            "`jinstruct leaderboard --models` to measure"
        )
    shown = [c for r in rows if r.kind == "reference" for c in r.cells.values()]
    reference_notes = (
        [f"{READING_MARK} {reading_note}"] if reading_note and any(c.reading for c in shown) else []
    )
    return Leaderboard(
        suite, rows, verdicts(rows, pairs, suite, ref_rows), ref_source, notes, reference_notes
    )


__all__ = [
    "Cell",
    "Leaderboard",
    "Row",
    "Verdict",
    "build",
    "load_reference",
    "paper_conclusion",
    "specs_from_records",
    "task_name",
]
