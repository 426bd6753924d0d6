"""Where the JGLUE datasets (JNLI, MARC-ja, JCommonsenseQA) come from: a local JGLUE copy (GitHub layout) or the Hugging Face hub.

Sources, first that works wins:
1. explicit files: metadata `train_file` / `validation_file`;
2. a local JGLUE copy: metadata `data_dir`, else the environment variable `JGLUE_DIR`
   (`datasets/jnli-v1.1/train-v1.1.json`, `datasets/jcommonsenseqa-v1.1/...`, any `v1.x` release);
3. the hub: `shunk031/JGLUE` (parquet conversion) then `Rakuten/JGLUE`.
An explicit local source that is broken is an error, never a silent fall-through to the hub.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets


class JGLUEDataError(ValueError):
    """Bad or unreachable JGLUE data; the message says where and how to fix it."""


@dataclass(frozen=True)
class JGLUEDataset:
    """What one JGLUE dataset looks like in every source."""

    hf_config: str  # config name on the hub
    local_name: str  # folder prefix in the GitHub layout
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]  # gold index order


JNLI = JGLUEDataset("JNLI", "jnli", ("sentence1", "sentence2"), ("entailment", "contradiction", "neutral"))
MARC_JA = JGLUEDataset("MARC-ja", "marc_ja", ("sentence",), ("positive", "negative"))
# The GitHub files hold the gold index (0..4); shunk031's hub copy names the classes choice0..choice4.
JCOMMONSENSEQA = JGLUEDataset(
    "JCommonsenseQA",
    "jcommonsenseqa",
    ("question", *(f"choice{i}" for i in range(5))),
    tuple(f"choice{i}" for i in range(5)),
)
DATASETS = {"jnli": JNLI, "marcja": MARC_JA, "jcommonsenseqa": JCOMMONSENSEQA}

# (repo id, revision): datasets >= 4 runs no loading scripts, so shunk031's copy is read from the
# parquet files that the hub converts it to.
HUB_SOURCES: tuple[tuple[str, str | None], ...] = (
    ("shunk031/JGLUE", "refs/convert/parquet"),
    ("Rakuten/JGLUE", None),
)
SPLIT_FILES = {"train": "train", "validation": "valid"}
_VERSION_DIR = re.compile(r"^(?P<name>[a-z_]+)-v(?P<version>1\.\d+)$")


@dataclass
class LoadedJGLUE:
    dataset: datasets.DatasetDict
    source: dict[str, Any]  # recorded in the results: where the rows came from, which version


def normalise_label(value: Any, spec: JGLUEDataset, where: str) -> int:
    """Gold index from an int (hub copies) or a label name (GitHub JSON files)."""
    if isinstance(value, bool):
        pass  # bool is an int subclass; never a valid label
    elif isinstance(value, int) and 0 <= value < len(spec.label_names):
        return value
    elif isinstance(value, str) and value in spec.label_names:
        return spec.label_names.index(value)
    elif isinstance(value, str) and value.isdigit() and int(value) < len(spec.label_names):
        return int(value)
    raise JGLUEDataError(
        f"{where}: label {value!r} is not one of {list(spec.label_names)} "
        f"(or an index 0..{len(spec.label_names) - 1}); fix or remove that row"
    )


def _check_row(row: Any, spec: JGLUEDataset, where: str) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise JGLUEDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    row = dict(row)
    for field in (*spec.text_fields, "label"):
        if field not in row or row[field] is None:
            raise JGLUEDataError(
                f"{where}: missing field {field!r}; each row needs {[*spec.text_fields, 'label']}"
            )
    for field in spec.text_fields:
        if not isinstance(row[field], str):
            raise JGLUEDataError(
                f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}"
            )
    return {**row, "label": normalise_label(row["label"], spec, where)}


def read_json_lines(path: Path, spec: JGLUEDataset) -> list[dict[str, Any]]:
    """Rows of a GitHub-layout file (one JSON object per line), validated, labels as gold indices."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise JGLUEDataError(
            f"{path}, line {line}: not UTF-8 (byte {e.object[e.start]:#04x}); JGLUE files are UTF-8 "
            "JSON lines. Convert it, e.g. `iconv -f SHIFT_JIS -t UTF-8 FILE > FILE.utf8`, or use "
            "the original release from github.com/yahoojapan/JGLUE"
        ) from None
    for lineno, line in enumerate(
        text.split("\n"), start=1
    ):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise JGLUEDataError(
                f"{where}: not valid JSON ({e.msg}); each line must be one JSON object"
            ) from e
        rows.append(_check_row(row, spec, where))
    if not rows:
        raise JGLUEDataError(f"{path}: no rows; expected one JSON object per line")
    return rows


def find_local_release(
    data_dir: Path, spec: JGLUEDataset, prefer_version: str
) -> tuple[str, dict[str, Path]]:
    """The release folder to read under a JGLUE copy: `prefer_version` if complete, else the newest."""
    root = data_dir / "datasets" if (data_dir / "datasets").is_dir() else data_dir
    if not root.is_dir():
        raise JGLUEDataError(f"JGLUE data_dir {data_dir} is not a folder")
    releases: dict[str, dict[str, Path]] = {}
    for child in root.iterdir():
        m = _VERSION_DIR.match(child.name)
        if not (m and m["name"] == spec.local_name and child.is_dir()):
            continue
        version = m["version"]
        files = {split: child / f"{stem}-v{version}.json" for split, stem in SPLIT_FILES.items()}
        if all(p.is_file() for p in files.values()):
            releases[version] = files
    if not releases:
        raise JGLUEDataError(
            f"no complete {spec.local_name} release under {root}: expected "
            f"{root}/{spec.local_name}-v1.N/train-v1.N.json and valid-v1.N.json (the JGLUE GitHub layout). "
            "Point data_dir at the JGLUE repository root, or give train_file and validation_file."
        )
    if prefer_version in releases:
        return prefer_version, releases[prefer_version]
    newest = max(releases, key=lambda v: tuple(int(x) for x in v.split(".")))
    return newest, releases[newest]


def _load_local_files(files: dict[str, Path], spec: JGLUEDataset) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(read_json_lines(path, spec)) for split, path in files.items()}
    )


def _load_hub(spec: JGLUEDataset, repo: str, revision: str | None) -> datasets.DatasetDict:
    loaded = datasets.load_dataset(repo, name=spec.hf_config, revision=revision)
    out = {}
    for split in SPLIT_FILES:
        rows = loaded[split]
        where = f"{repo} ({spec.hf_config}, {split})"
        names = rows.features["label"].names if hasattr(rows.features.get("label"), "names") else None
        if names is not None and tuple(names) != spec.label_names:
            raise JGLUEDataError(f"{where}: label names {names} differ from {list(spec.label_names)}")
        out[split] = rows.map(lambda r, i, w=where: _check_row(r, spec, f"{w}, row {i}"), with_indices=True)
    return datasets.DatasetDict(out)


def load_jglue(
    family: str,
    *,
    data_dir: str | os.PathLike | None = None,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    prefer_version: str = "1.1",
) -> LoadedJGLUE:
    """Load train and validation of `family` (a key of DATASETS) from the first working source."""
    spec = DATASETS[family]
    if train_file or validation_file:
        if not (train_file and validation_file):
            if not (data_dir or os.environ.get("JGLUE_DIR")):
                raise JGLUEDataError(
                    "give both train_file and validation_file, or a data_dir for the missing one"
                )
            _, found = find_local_release(Path(data_dir or os.environ["JGLUE_DIR"]), spec, prefer_version)
            train_file = train_file or found["train"]
            validation_file = validation_file or found["validation"]
        files = {"train": Path(train_file), "validation": Path(validation_file)}
        for split, path in files.items():
            if not path.is_file():
                raise JGLUEDataError(f"{split} file {path} does not exist")
        return LoadedJGLUE(
            _load_local_files(files, spec),
            {"source": "local files", **{f"{s}_file": str(p) for s, p in files.items()}},
        )

    local = data_dir or os.environ.get("JGLUE_DIR")
    if local:
        origin = "metadata data_dir" if data_dir else "environment JGLUE_DIR"
        version, files = find_local_release(Path(local), spec, prefer_version)
        return LoadedJGLUE(
            _load_local_files(files, spec),
            {"source": f"local JGLUE copy ({origin})", "data_dir": str(local), "jglue_version": version},
        )

    tried = []
    for repo, revision in HUB_SOURCES:
        try:
            dataset = _load_hub(spec, repo, revision)
        except JGLUEDataError:
            raise
        except Exception as e:  # unreachable hub, missing config: try the next source
            tried.append(
                f"  - hub {repo} (config {spec.hf_config}{', revision ' + revision if revision else ''}): "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            )
            continue
        return LoadedJGLUE(
            dataset, {"source": "hub", "repo": repo, "revision": revision or "main", "config": spec.hf_config}
        )
    raise JGLUEDataError(
        f"could not load {spec.hf_config} from any source. Tried:\n" + "\n".join(tried) + "\n"
        "To score offline, point at a local copy in the JGLUE GitHub layout "
        f"(datasets/{spec.local_name}-v1.1/train-v1.1.json, valid-v1.1.json): "
        'lm_eval ... --metadata \'{"data_dir": "/path/to/JGLUE"}\' or export JGLUE_DIR=/path/to/JGLUE'
    )
