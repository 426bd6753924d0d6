"""Where the JP Eval generation datasets come from: local copies in their original layouts, else the
reference's hub ids. Each loader returns plain rows plus a `source` record for the results JSON.

Local copies, by `--metadata` key (an explicit local source that is broken is an error, never a silent
fall-through to the hub):
- JSQuAD: `data_dir` (or env JGLUE_DIR), a JGLUE checkout: datasets/jsquad-v1.1/{train,valid}-v1.1.json
  (SQuAD-style JSON); or `jsquad_train_file` + `jsquad_validation_file`.
- MGSM: `mgsm_dir`, google-research/url-nlp's mgsm/ folder: mgsm_ja.tsv + exemplars.py (read with `ast`,
  never imported or executed).
- JAQKET v2: `jaqket_dir` holding the hub repo's files train_jaqket_59.350.json and
  dev_jaqket_59.350.json; or `jaqket_train_file` + `jaqket_validation_file`.
- XLSum-ja: `xlsum_dir` holding the hub copy's train.csv and test.csv (directly or under data/); or
  `xlsum_train_file` + `xlsum_test_file` (.csv, or .jsonl as in the XL-Sum release).
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinstruct.harness_tasks.jglue.data import JGLUEDataset, find_local_release

JSQUAD_HUB = (("shunk031/JGLUE", "refs/convert/parquet"), ("Rakuten/JGLUE", None))
MGSM_HUB = (("juletxara/mgsm", "refs/convert/parquet"), ("juletxara/mgsm", None))
JAQKET_HUB = "kumapo/JAQKET"
JAQKET_FILES = {"train": "train_jaqket_59.350.json", "validation": "dev_jaqket_59.350.json"}
XLSUM_HUB = "mkshing/xlsum_ja"
_JSQUAD = JGLUEDataset("JSQuAD", "jsquad", ("title", "context", "question"), ())


class JPEvalDataError(ValueError):
    """Bad or unreachable data; the message names the file, the row and the fix."""


@dataclass
class Loaded:
    splits: dict[str, list[dict[str, Any]]]
    source: dict[str, Any]


def _first_line(e: Exception) -> str:
    text = str(e).splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _try_hub(what: str, attempts: list[tuple[str, Callable[[], Loaded]]], local_hint: str) -> Loaded:
    tried = []
    for label, load in attempts:
        try:
            return load()
        except JPEvalDataError:
            raise
        except Exception as e:  # unreachable hub, missing config: try the next source
            tried.append(f"  - {label}: {_first_line(e)}")
    raise JPEvalDataError(
        f"could not load {what} from any source. Tried:\n" + "\n".join(tried) + "\n" + local_hint
    )


def _require(row: Any, fields: dict[str, type], where: str) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise JPEvalDataError(f"{where}: expected an object, got {type(row).__name__}")
    for name, kind in fields.items():
        if name not in row or not isinstance(row[name], kind):
            got = "missing" if name not in row else type(row[name]).__name__
            raise JPEvalDataError(
                f"{where}: field {name!r} must be {kind.__name__} ({got}); fix or remove that row"
            )
    return dict(row)


def _file(path: Any, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise JPEvalDataError(f"{what} {p} does not exist")
    return p


def _split_files(meta: Mapping[str, Any], family: str, splits: tuple[str, str]) -> dict[str, Path] | None:
    """The split files given as `<family>_<split>_file` metadata: both or neither; None when neither."""
    keys = {split: f"{family}_{split}_file" for split in splits}
    if not any(meta.get(k) for k in keys.values()):
        return None
    if not all(meta.get(k) for k in keys.values()):
        raise JPEvalDataError(f"give both {' and '.join(keys.values())}")
    return {split: _file(meta[k], k) for split, k in keys.items()}


# --- JSQuAD -----------------------------------------------------------------------------------------


def jsquad_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    row = _require(row, {"id": str, "title": str, "context": str, "question": str}, where)
    answers = row.get("answers")
    texts = answers.get("text") if isinstance(answers, Mapping) else None
    if not isinstance(texts, list | tuple) or not texts or not all(isinstance(t, str) for t in texts):
        raise JPEvalDataError(f"{where}: `answers.text` must be a non-empty list of strings")
    return {
        "id": row["id"],
        "title": row["title"],
        "context": row["context"],
        "question": row["question"],
        "answers": {"text": list(texts)},
    }


def read_squad_json(path: Path) -> list[dict[str, Any]]:
    """Questions of a SQuAD-style JGLUE file, in file order (the hub copies' row order)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise JPEvalDataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        raise JPEvalDataError(
            f'{path}: expected {{"data": [articles]}} (the SQuAD layout of JGLUE\'s JSQuAD)'
        )
    rows = []
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"{path}, data[{a}].paragraphs[{p}].qas[{q}]"
                flat = {
                    **qa,
                    "title": article.get("title"),
                    "context": paragraph.get("context"),
                    "answers": {"text": [x.get("text") for x in qa.get("answers", [])]},
                }
                rows.append(jsquad_row(flat, where))
    if not rows:
        raise JPEvalDataError(f"{path}: no questions")
    return rows


def load_jsquad(meta: Mapping[str, Any]) -> Loaded:
    files = _split_files(meta, "jsquad", ("train", "validation"))
    if files is not None:
        return Loaded(
            {s: read_squad_json(p) for s, p in files.items()},
            {"source": "local files", **{f"{s}_file": str(p) for s, p in files.items()}},
        )
    local = meta.get("data_dir") or os.environ.get("JGLUE_DIR")
    if local:
        try:
            version, files = find_local_release(Path(local), _JSQUAD, "1.1")
        except ValueError as e:
            raise JPEvalDataError(
                f"{e} (for JSQuAD the file keys are jsquad_train_file and jsquad_validation_file)"
            ) from None
        return Loaded(
            {s: read_squad_json(p) for s, p in files.items()},
            {"source": "local JGLUE copy", "data_dir": str(local), "jglue_version": version},
        )

    def hub(repo: str, revision: str | None) -> Loaded:
        import datasets

        loaded = datasets.load_dataset(repo, name="JSQuAD", revision=revision)
        splits = {
            s: [jsquad_row(r, f"{repo} JSQuAD {s}, row {i}") for i, r in enumerate(loaded[s])]
            for s in ("train", "validation")
        }
        return Loaded(
            splits, {"source": "hub", "repo": repo, "revision": revision or "main", "config": "JSQuAD"}
        )

    return _try_hub(
        "JSQuAD",
        [(f"hub {r} (JSQuAD{', ' + v if v else ''})", lambda r=r, v=v: hub(r, v)) for r, v in JSQUAD_HUB],
        "To score offline, point at a JGLUE checkout holding datasets/jsquad-v1.1/{train,valid}-v1.1.json: "
        '--metadata \'{"data_dir": "/path/to/JGLUE"}\'',
    )


# --- MGSM -------------------------------------------------------------------------------------------


def _literal_assignments(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Module-level `NAME = <literal>` values of a Python file, parsed, never executed."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        raise JPEvalDataError(f"{path}, line {e.lineno}: not parseable Python ({e.msg})") from e
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in names:
                try:
                    found[name] = ast.literal_eval(node.value)
                except ValueError as e:
                    raise JPEvalDataError(f"{path}, line {node.lineno}: {name} is not a plain literal") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise JPEvalDataError(f"{path}: no module-level {missing} (expected url-nlp's mgsm/exemplars.py)")
    return found


def read_mgsm_dir(folder: Path, language: str = "ja") -> dict[str, list[dict[str, Any]]]:
    tsv, exemplars = folder / f"mgsm_{language}.tsv", folder / "exemplars.py"
    for p in (tsv, exemplars):
        if not p.is_file():
            raise JPEvalDataError(
                f"mgsm_dir {folder}: missing {p.name} (expected url-nlp's mgsm/ folder layout)"
            )
    test = []
    for lineno, line in enumerate(tsv.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        question, sep, number = line.rpartition("\t")
        try:
            if not sep:
                raise ValueError
            value = int(number.strip().replace(",", ""))
        except ValueError:
            raise JPEvalDataError(f"{tsv}, line {lineno}: expected 'question<TAB>integer answer'") from None
        test.append({"question": question, "answer": "", "answer_number": value})
    values = _literal_assignments(exemplars, ("MGSM_EXEMPLARS", "EXEMPLAR_NUMBER_ANSWERS"))
    shots = values["MGSM_EXEMPLARS"].get(language)
    numbers = values["EXEMPLAR_NUMBER_ANSWERS"]
    if not isinstance(shots, dict) or len(shots) != len(numbers):
        raise JPEvalDataError(
            f"{exemplars}: MGSM_EXEMPLARS[{language!r}] must hold one entry per EXEMPLAR_NUMBER_ANSWERS"
        )
    train = []
    for i, key in enumerate(sorted(shots, key=int)):
        entry = shots[key]
        if not (
            isinstance(entry, dict) and isinstance(entry.get("q"), str) and isinstance(entry.get("a"), str)
        ):
            raise JPEvalDataError(
                f"{exemplars}: MGSM_EXEMPLARS[{language!r}][{key!r}] needs string 'q' and 'a'"
            )
        train.append({"question": entry["q"], "answer": entry["a"], "answer_number": int(numbers[i])})
    return {"train": train, "test": test}


def mgsm_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    row = _require(row, {"question": str}, where)
    number = row.get("answer_number")
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise JPEvalDataError(f"{where}: `answer_number` must be a number")
    return {"question": row["question"], "answer": row.get("answer") or "", "answer_number": number}


def load_mgsm(meta: Mapping[str, Any]) -> Loaded:
    folder = meta.get("mgsm_dir")
    if folder:
        return Loaded(
            read_mgsm_dir(Path(folder)), {"source": "local url-nlp mgsm/ folder", "mgsm_dir": str(folder)}
        )

    def hub(repo: str, revision: str | None) -> Loaded:
        import datasets

        loaded = datasets.load_dataset(repo, name="ja", revision=revision)
        splits = {
            s: [mgsm_row(r, f"{repo} ja {s}, row {i}") for i, r in enumerate(loaded[s])]
            for s in ("train", "test")
        }
        return Loaded(splits, {"source": "hub", "repo": repo, "revision": revision or "main", "config": "ja"})

    return _try_hub(
        "MGSM (ja)",
        [(f"hub {r} (ja{', ' + v if v else ''})", lambda r=r, v=v: hub(r, v)) for r, v in MGSM_HUB],
        "To score offline, point at url-nlp's mgsm/ folder (mgsm_ja.tsv, exemplars.py): "
        '--metadata \'{"mgsm_dir": "/path/to/mgsm"}\'',
    )


# --- JAQKET v2 --------------------------------------------------------------------------------------


def read_jaqket_json(path: Path, num_contexts: int) -> tuple[list[dict[str, Any]], int]:
    """Questions with their first `num_contexts` passages; those with no answer-bearing passage are
    dropped, as the hub's loading script does. Returns (rows, number dropped)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise JPEvalDataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(data, list):
        raise JPEvalDataError(
            f"{path}: expected a JSON array of questions (the retriever-output layout of JAQKET v2)"
        )
    rows, dropped = [], 0
    for i, item in enumerate(data):
        where = f"{path}, question {i}"
        item = _require(item, {"qid": str, "question": str, "answers": list, "ctxs": list}, where)
        ctxs = []
        for j, ctx in enumerate(item["ctxs"][:num_contexts]):
            ctxs.append(_require(ctx, {"title": str, "text": str, "has_answer": bool}, f"{where}, ctxs[{j}]"))
        if not item["answers"] or not all(isinstance(a, str) for a in item["answers"]):
            raise JPEvalDataError(f"{where}: `answers` must be a non-empty list of strings")
        if not any(c["has_answer"] for c in ctxs):
            dropped += 1
            continue
        rows.append(
            {
                "qid": item["qid"],
                "question": item["question"],
                "answers": {"text": list(item["answers"])},
                "ctxs": {k: [c[k] for c in ctxs] for k in ("title", "text", "has_answer")},
            }
        )
    return rows, dropped


def load_jaqket(meta: Mapping[str, Any], num_contexts: int) -> Loaded:
    origin = ""
    files = _split_files(meta, "jaqket", ("train", "validation"))
    if files is not None:
        origin = "local files"
    elif meta.get("jaqket_dir"):
        folder = Path(meta["jaqket_dir"])
        files = {s: _file(folder / name, "jaqket_dir file") for s, name in JAQKET_FILES.items()}
        origin = "local jaqket_dir"

    def read(found: dict[str, Path], source: dict[str, Any]) -> Loaded:
        splits, dropped = {}, {}
        for split, path in found.items():
            splits[split], dropped[split] = read_jaqket_json(path, num_contexts)
        return Loaded(splits, {**source, "num_contexts": num_contexts, "dropped_without_answer": dropped})

    if files is not None:
        return read(files, {"source": origin, **{f"{s}_file": str(p) for s, p in files.items()}})

    def hub() -> Loaded:
        from huggingface_hub import hf_hub_download

        found = {
            s: Path(hf_hub_download(JAQKET_HUB, name, repo_type="dataset"))
            for s, name in JAQKET_FILES.items()
        }
        return read(found, {"source": "hub", "repo": JAQKET_HUB, "files": dict(JAQKET_FILES)})

    return _try_hub(
        "JAQKET v2",
        [(f"hub {JAQKET_HUB} files {sorted(JAQKET_FILES.values())}", hub)],
        "To score offline, put the hub repo's train_jaqket_59.350.json and dev_jaqket_59.350.json in a folder: "
        '--metadata \'{"jaqket_dir": "/path/to/folder"}\'',
    )


# --- XLSum-ja ---------------------------------------------------------------------------------------


def read_summaries(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((f"{path}, line {lineno}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise JPEvalDataError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from e
    else:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [(f"{path}, row {i}", r) for i, r in enumerate(csv.DictReader(f), start=2)]
    if not rows:
        raise JPEvalDataError(f"{path}: no rows (expected columns text and summary)")
    return [summary_row(r, where) for where, r in rows]


def summary_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    row = _require(row, {"text": str, "summary": str}, where)
    return {"id": str(row.get("id", "")), "text": row["text"], "summary": row["summary"]}


def load_xlsum(meta: Mapping[str, Any]) -> Loaded:
    files = _split_files(meta, "xlsum", ("train", "test"))
    if files is None and meta.get("xlsum_dir"):
        folder = Path(meta["xlsum_dir"])
        folder = folder / "data" if (folder / "data" / "test.csv").is_file() else folder
        files = {s: _file(folder / f"{s}.csv", "xlsum_dir file") for s in ("train", "test")}
    if files is not None:
        return Loaded(
            {s: read_summaries(p) for s, p in files.items()},
            {"source": "local files", **{f"{s}_file": str(p) for s, p in files.items()}},
        )

    def hub() -> Loaded:
        import datasets

        loaded = datasets.load_dataset(XLSUM_HUB)
        splits = {
            s: [summary_row(r, f"{XLSUM_HUB} {s}, row {i}") for i, r in enumerate(loaded[s])]
            for s in ("train", "test")
        }
        return Loaded(splits, {"source": "hub", "repo": XLSUM_HUB})

    return _try_hub(
        "XLSum-ja",
        [(f"hub {XLSUM_HUB}", hub)],
        "To score offline, put the hub copy's train.csv and test.csv in a folder: "
        '--metadata \'{"xlsum_dir": "/path/to/folder"}\'',
    )
