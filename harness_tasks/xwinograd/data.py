"""Where XWinograd-ja comes from: the reference's hub copy, or the original XWinograd `dataset.tsv`.

Rows: `sentence1`, `sentence2` (the sentence with the pronoun replaced by each candidate) and
`answer` ("1" or "2", the candidate the pronoun refers to). The hub copy
(`polm-stability/xwinograd-ja`) holds them as they are. The original file
(yandex-research/crosslingual_winograd `dataset.tsv`, metadata `xwinograd_path`) holds the `jp` rows
as tokens, a pronoun span and two candidates; the sentences are rebuilt as
`"".join(tokens[:start]) + candidate + "".join(tokens[end:])`, in file order (a reconstruction of the
hub copy, not checked byte for byte against it). Sentences are never stripped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets

HUB_REPO = "polm-stability/xwinograd-ja"
LANGUAGE = "jp"  # the language code of the Japanese rows in dataset.tsv


class XWinogradDataError(ValueError):
    """Bad or unreachable XWinograd data; the message says where and how to fix it."""


def check_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise XWinogradDataError(f"{where}: expected a mapping with sentence1, sentence2, answer")
    for name in ("sentence1", "sentence2"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise XWinogradDataError(f"{where}: {name} must be a non-empty string, got {row.get(name)!r}")
    answer = str(row.get("answer"))
    if answer not in ("1", "2"):
        raise XWinogradDataError(f"{where}: answer must be 1 or 2, got {row.get('answer')!r}")
    return {"sentence1": row["sentence1"], "sentence2": row["sentence2"], "answer": answer}


def rows_from_tsv(path: Path) -> list[dict[str, Any]]:
    """The `jp` rows of the original dataset.tsv as (sentence1, sentence2, answer), in file order."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            if cols[0] != LANGUAGE:
                continue
            where = f"{path}, line {lineno}"
            if len(cols) != 7:
                raise XWinogradDataError(
                    f"{where}: expected 7 tab-separated columns (lang, source, English, sentence, tokens, "
                    f"pronoun, candidates), got {len(cols)}"
                )
            try:
                tokens, pronoun, candidates = (json.loads(c) for c in cols[4:7])
                start, end = pronoun[1]
                texts = [c[0] for c in candidates]
                referent = [bool(c[3]) for c in candidates]
            except (json.JSONDecodeError, TypeError, ValueError, IndexError) as e:
                raise XWinogradDataError(
                    f"{where}: tokens/pronoun/candidates are not the expected JSON ({e})"
                ) from e
            if len(texts) != 2 or referent.count(True) != 1:
                raise XWinogradDataError(f"{where}: expected two candidates, exactly one the referent")
            head, tail = "".join(tokens[:start]), "".join(tokens[end:])
            rows.append(
                check_row(
                    {
                        "sentence1": head + texts[0] + tail,
                        "sentence2": head + texts[1] + tail,
                        "answer": "1" if referent[0] else "2",
                    },
                    where,
                )
            )
    if not rows:
        raise XWinogradDataError(f"{path}: no `{LANGUAGE}` rows; expected the original XWinograd dataset.tsv")
    return rows


def load_xwinograd(
    xwinograd_path: str | os.PathLike | None = None,
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """(the test rows, where they came from): `xwinograd_path` when given, else the hub copy."""
    if xwinograd_path:
        path = Path(xwinograd_path)
        if not path.is_file():
            raise XWinogradDataError(
                f"xwinograd_path {path} does not exist; give the original XWinograd dataset.tsv"
            )
        rows = rows_from_tsv(path)
        return datasets.Dataset.from_list(rows), {"source": "local dataset.tsv (jp rows)", "path": str(path)}
    try:
        loaded = datasets.load_dataset(HUB_REPO, split="test")
    except Exception as e:  # unreachable hub or a changed repository
        raise XWinogradDataError(
            f"could not load {HUB_REPO} from the hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "To score offline, give the original XWinograd file (yandex-research/crosslingual_winograd "
            'dataset.tsv; its jp rows are used): --metadata \'{"xwinograd_path": "/path/to/dataset.tsv"}\''
        ) from e
    rows = [check_row(dict(r), f"{HUB_REPO} (test), row {i}") for i, r in enumerate(loaded)]
    return datasets.Dataset.from_list(rows), {"source": "hub", "repo": HUB_REPO, "split": "test"}
