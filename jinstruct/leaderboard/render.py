"""Writers: leaderboard.md, leaderboard.csv, a self-contained leaderboard.html, and PNG charts."""

from __future__ import annotations

import base64
import csv
import html
import re
from pathlib import Path

from jinstruct.leaderboard.config import Column
from jinstruct.leaderboard.table import Cell, Leaderboard

MARKER_LEGEND = (
    "`*` some evaluated examples are longer than the sequence length the adapter was trained with "
    "(read from the adapter's saved training config); `†` some exceed the model's maximum length and "
    "were truncated by the harness. Both are counted from the requests actually scored; the counts are "
    "in leaderboard.csv. In the paper's rows they are as printed there."
)


def _caption(lb: Leaderboard, italic: str = "_") -> str:
    source = f" ({lb.reference_source})" if lb.reference_source else ""
    if lb.suite.caption:
        return lb.suite.caption.format(italic=italic, source=source)
    text = "Each figure is lm-eval's value ± its standard error over examples (↓: lower is better)."
    if any(row.kind == "reference" for row in lb.rows):
        text += f" {italic}Italic{italic} rows are published figures{source}."
    return text + " The Prompt column is the prompt version each model was scored with."


def fmt_cell(cell: Cell | None, col: Column) -> str:
    if cell is None or cell.value is None:
        return "–"
    text = f"{cell.value:.{col.decimals}f}"
    if cell.stderr is not None:
        text += f" ± {cell.stderr:.{col.decimals}f}"
    return text + cell.markers


def _table(lb: Leaderboard, columns: tuple[Column, ...]) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """Heading and body rows, each row with whether it is a reference (published) row."""
    head = ["Model", "Prompt"] + [c.heading + (" ↓" if c.lower_is_better else "") for c in columns]
    body = []
    for row in lb.rows:
        reference = row.kind == "reference"
        if reference and not any(
            row.cells.get(c.key) and row.cells[c.key].value is not None for c in columns
        ):
            continue
        body.append(
            (reference, [row.name, row.note or ""] + [fmt_cell(row.cells.get(c.key), c) for c in columns])
        )
    return head, body


def _md_table(head: list[str], body: list[tuple[bool, list[str]]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for reference, (name, *cells) in body:
        name = f"_{name}_" if reference else name  # published rows in italics
        lines.append("| " + " | ".join(map(esc, [name, *cells])) + " |")
    return "\n".join(lines)


def _marker_counts(lb: Leaderboard) -> list[str]:
    out = []
    for row in lb.rows:
        if row.kind == "reference":  # printed markers: the paper gives no counts
            continue
        for col in lb.suite.all_columns:
            cell = row.cells.get(col.key)
            if not cell or not cell.markers:
                continue
            parts = []
            if cell.over_train:
                parts.append(f"{cell.over_train} of {cell.n} longer than the training sequence length")
            if cell.over_max:
                parts.append(f"{cell.over_max} of {cell.n} longer than the model's maximum length")
            out.append(f"{row.name}, {col.heading} ({cell.task}): " + "; ".join(parts))
    return out


def to_markdown(lb: Leaderboard, banner: str | None = None, charts: list[Path] | None = None) -> str:
    parts = [f"# Leaderboard: {lb.suite.name}", "", lb.suite.title, ""]
    if banner:
        parts += [f"> {line}" if line else ">" for line in banner.splitlines()] + [""]
    head, body = _table(lb, lb.suite.columns)
    parts += [_md_table(head, body), ""]
    parts += [_caption(lb), "", MARKER_LEGEND, ""]
    parts += [line for note in lb.reference_notes for line in (note, "")]
    if lb.suite.extra:
        head, body = _table(lb, lb.suite.extra)
        parts += ["## More figures", ""] + ([lb.suite.extra_caption, ""] if lb.suite.extra_caption else [])
        parts += [_md_table(head, body), ""]
    if lb.verdicts:
        parts += ["## Did instruction tuning help?", ""]
        for v in lb.verdicts:
            parts += [f"**{v.summary}**", ""] + ([f"_{v.paper}_", ""] if v.paper else [])
            parts += [f"- {line}" for line in v.lines] + [""]
    counts = _marker_counts(lb)
    if counts:
        parts += ["## Markers", ""] + [f"- {c}" for c in counts] + [""]
    if charts:
        parts += ["## Charts", ""] + [f"![{p.stem}]({p.name})" for p in charts] + [""]
    if lb.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in lb.notes] + [""]
    return "\n".join(parts)


def write_csv(lb: Leaderboard, path: Path) -> None:
    fields = [
        "model",
        "kind",
        "prompt_version",
        "column",
        "task",
        "shots",
        "metric",
        "value",
        "stderr",
        "markers",
        "n_examples",
        "n_over_train_seq_len",
        "n_over_model_max",
        "base_model",
        "adapter",
    ]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in lb.rows:
            for col in lb.suite.all_columns:
                cell = row.cells.get(col.key)
                if cell is None:
                    continue
                w.writerow(
                    {
                        "model": row.name,
                        "kind": row.kind,
                        "prompt_version": row.note,
                        "column": col.heading,
                        "task": cell.task,
                        "shots": col.shots,
                        "metric": col.metric,
                        "value": "" if cell.value is None else f"{cell.value:.6g}",
                        "stderr": "" if cell.stderr is None else f"{cell.stderr:.6g}",
                        "markers": cell.markers,
                        "n_examples": "" if cell.n is None else cell.n,
                        "n_over_train_seq_len": "" if cell.over_train is None else cell.over_train,
                        "n_over_model_max": "" if cell.over_max is None else cell.over_max,
                        "base_model": row.spec.base_model if row.spec else "",
                        "adapter": (row.spec.adapter or "") if row.spec else "",
                    }
                )


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()


def write_charts(lb: Leaderboard, out_dir: Path) -> list[Path]:
    """One PNG per task: shots on the x axis, one bar per model, each tuned model beside its base."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [r for r in lb.rows if r.kind == "model"]
    if not models:
        return []
    titles: dict[str, list[Column]] = {}
    for col in lb.suite.columns:
        titles.setdefault(col.title, []).append(col)
    # Colour per pair: a base model in a light shade, its tuned model in the dark shade of the same hue.
    palette = plt.get_cmap("tab20").colors
    colours, hue = {}, -1
    for row in models:
        tuned = bool(row.spec and (row.spec.adapter or row.spec.base))
        if not tuned:
            hue += 1
        colours[row.name] = palette[(2 * max(hue, 0)) % 20 + (0 if tuned else 1)]
    written = []
    for title, cols in titles.items():
        fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(cols) * len(models) ** 0.5 + 2), 3.4), dpi=110)
        width = 0.8 / len(models)
        for i, row in enumerate(models):
            xs, ys, es = [], [], []
            for j, col in enumerate(cols):
                cell = row.cells.get(col.key)
                if cell and cell.value is not None:
                    xs.append(j + (i - (len(models) - 1) / 2) * width)
                    ys.append(cell.value)
                    es.append(cell.stderr or 0.0)
            if xs:
                ax.bar(
                    xs,
                    ys,
                    width * 0.95,
                    yerr=es if any(es) else None,
                    capsize=2,
                    label=row.name,
                    color=colours[row.name],
                    edgecolor="black",
                    linewidth=0.4,
                )
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels([c.heading if len(cols) == 1 else f"{c.shots}-shot" for c in cols])
        unit = cols[0].metric + (" (%)" if cols[0].scale == 100 else "")
        ax.set_ylabel(unit + (" ↓" if cols[0].lower_is_better else ""))
        if cols[0].lower_is_better and all(
            (r.cells.get(c.key) is None or r.cells[c.key].value is None or r.cells[c.key].value > 0)
            for r in models
            for c in cols
        ):
            ax.set_yscale("log")
        ax.set_title(f"{title}: base and tuned side by side")
        if ax.get_legend_handles_labels()[0]:  # a column nobody has scored yet has no bars to name
            ax.legend(fontsize=7, loc="best")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"chart_{_slug(title)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _html_table(head: list[str], body: list[tuple[bool, list[str]]]) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for reference, cells in body:
        cls = ' class="ref"' if reference else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def to_html(lb: Leaderboard, charts: list[Path], banner: str | None = None) -> str:
    css = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "tr.ref{font-style:italic;color:#555;background:#f6f6f6}.banner{background:#fff4d6;border:1px solid #e0c060;"
        "padding:.6em 1em}img{max-width:100%;margin:.5em 0}"
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Leaderboard: {html.escape(lb.suite.name)}</title><style>{css}</style></head><body>",
        f"<h1>Leaderboard: {html.escape(lb.suite.name)}</h1><p>{html.escape(lb.suite.title)}</p>",
    ]
    if banner:
        parts.append(f"<div class='banner'>{html.escape(banner).replace(chr(10), '<br>')}</div>")
    head, body = _table(lb, lb.suite.columns)
    parts.append(_html_table(head, body))
    parts.append(f"<p>{html.escape(_caption(lb, italic=''))}</p>")
    parts.append(f"<p>{html.escape(MARKER_LEGEND.replace('`', ''))}</p>")
    parts += [f"<p>{html.escape(note)}</p>" for note in lb.reference_notes]
    if lb.suite.extra:
        head, body = _table(lb, lb.suite.extra)
        parts += ["<h2>More figures</h2>", _html_table(head, body)]
    if lb.verdicts:
        parts.append("<h2>Did instruction tuning help?</h2>")
        for v in lb.verdicts:
            parts.append(f"<p><b>{html.escape(v.summary)}</b></p>")
            if v.paper:
                parts.append(f"<p><i>{html.escape(v.paper)}</i></p>")
            parts.append("<ul>")
            parts += [f"<li>{html.escape(line)}</li>" for line in v.lines]
            parts.append("</ul>")
    counts = _marker_counts(lb)
    if counts:
        parts += ["<h2>Markers</h2><ul>"] + [f"<li>{html.escape(c)}</li>" for c in counts] + ["</ul>"]
    for p in charts:  # embedded, so the page is one self-contained file
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(p.stem)}' src='data:image/png;base64,{data}'>")
    if lb.notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in lb.notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_all(lb: Leaderboard, out_dir: Path, banner: str | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = write_charts(lb, out_dir)
    paths = {
        "md": out_dir / "leaderboard.md",
        "csv": out_dir / "leaderboard.csv",
        "html": out_dir / "leaderboard.html",
    }
    paths["md"].write_text(to_markdown(lb, banner, charts), encoding="utf-8")
    write_csv(lb, paths["csv"])
    paths["html"].write_text(to_html(lb, charts, banner), encoding="utf-8")
    for p in charts:
        paths[p.stem] = p
    return paths
