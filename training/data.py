"""Instruction data: load (hub id or local JSON/JSONL/Parquet), validate, template, tokenize, split.

Tokenization follows the paper's code (alpaca-lora lineage): the prompt and the output are tokenized
as one string, truncated on the right to `seq_len`, and EOS is appended only when it still fits.
With `loss_on="response"` the prompt's tokens are excluded from the loss.

Tokenized examples live in two flat numpy arrays (tokens + offsets) so millions of rows fit in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jinstruct.atomic import atomic_write
from jinstruct.prompts import instruction_prompt

REQUIRED_FIELDS = ("instruction", "input", "output")
HUB_DATASETS = ("izumi-lab/llm-japanese-dataset", "izumi-lab/llm-japanese-dataset-vanilla")
LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the fix."""


@dataclass
class DataReport:
    """What happened to the rows on the way in; printed and stored with the adapter."""

    source: str
    rows_read: int = 0
    bad_rows: int = 0
    bad_row_examples: list[str] = field(default_factory=list)
    translation_rows_dropped: int = 0
    translation_categories: dict[str, int] = field(default_factory=dict)
    rows_after_max_rows: int = 0
    train_rows: int = 0
    val_rows: int = 0
    truncated: int = 0  # examples cut at seq_len
    eos_added: int = 0
    no_response_tokens: int = 0  # response-only loss, prompt fills seq_len: dropped (nothing to learn)

    def lines(self) -> list[str]:
        out = [f"data {self.source}: {self.rows_read} rows read"]
        if self.bad_rows:
            out.append(
                f"  skipped {self.bad_rows} invalid rows (--skip-bad-rows); first: "
                + "; ".join(self.bad_row_examples[:3])
            )
        if self.translation_rows_dropped:
            cats = ", ".join(f"{k}: {v}" for k, v in sorted(self.translation_categories.items()))
            out.append(f"  dropped {self.translation_rows_dropped} translation rows ({cats})")
        if self.rows_after_max_rows:
            out.append(f"  kept the first {self.rows_after_max_rows} rows (--max-rows)")
        out.append(f"  split: {self.train_rows} train / {self.val_rows} validation")
        out.append(f"  {self.truncated} examples truncated at seq_len, EOS appended to {self.eos_added}")
        if self.no_response_tokens:
            out.append(
                f"  dropped {self.no_response_tokens} examples whose prompt fills seq_len "
                "(no response token left to learn)"
            )
        return out


# ---------------------------------------------------------------- reading rows


def _iter_local(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield (where, row) with a location a person can find in the file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue  # blank lines are not rows
                where = f"{path}:{lineno}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as e:
                    yield where, DataError(f"{where}: not valid JSON ({e.msg}, column {e.colno})")
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{e.lineno}: not valid JSON ({e.msg}); "
                "a .json file must hold one list of {instruction, input, output} objects"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(
                f"{path}: expected a JSON list of rows, got {type(data).__name__}; "
                "use a list or JSON lines (.jsonl)"
            )
        for i, row in enumerate(data):
            yield f"{path} row {i} (0-based)", row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path} row {i} (0-based)", row
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)}")


def _iter_hub(name: str, revision: str | None) -> Iterator[tuple[str, Any]]:
    from datasets import load_dataset

    dataset = load_dataset(name, split="train", revision=revision)
    for i, row in enumerate(dataset):
        yield f"{name} train row {i} (0-based)", row


def check_source(source: str) -> None:
    """Fail fast (before a model is loaded) on a local data path that is not there."""
    path = Path(source)
    if path.is_dir():
        raise DataError(
            f"{source}: is a folder; --data takes one .json, .jsonl or .parquet file of "
            f"{{instruction, input, output}} rows, or a hub id such as {HUB_DATASETS[1]}"
        )
    looks_local = path.suffix.lower() in LOCAL_SUFFIXES or source.startswith((".", "/", "~"))
    if looks_local and not path.is_file():
        raise DataError(
            f"{source}: data file not found (a hub id looks like owner/name, e.g. {HUB_DATASETS[1]})"
        )


def iter_rows(source: str, revision: str | None = None) -> Iterator[tuple[str, Any]]:
    path = Path(source)
    if path.exists():
        if path.is_dir():
            raise DataError(f"{path} is a folder; pass one .json, .jsonl or .parquet file")
        return _iter_local(path)
    if path.suffix.lower() in LOCAL_SUFFIXES:
        raise DataError(f"{source}: file not found")
    return _iter_hub(source, revision)


def row_problem(row: Any) -> str | None:
    """Why a row cannot be used, or None. `input` may be empty; `output` may not."""
    if isinstance(row, DataError):
        return str(row).split(": ", 1)[-1]
    if not isinstance(row, dict):
        return f"expected an object with {', '.join(REQUIRED_FIELDS)}, got {type(row).__name__}"
    for name in REQUIRED_FIELDS:
        if name not in row:
            return f"missing field {name!r}"
        if not isinstance(row[name], str):
            return f"field {name!r} must be a string, got {type(row[name]).__name__}"
    if not row["instruction"].strip():
        return "empty 'instruction'"
    if not row["output"].strip():
        return "empty 'output'"
    return None


def load_rows(
    source: str,
    revision: str | None,
    skip_bad_rows: bool,
    drop_translation: bool,
    translation_pattern: str,
    max_rows: int | None,
) -> tuple[list[dict[str, str]], DataReport]:
    report = DataReport(source=source)
    pattern = re.compile(translation_pattern)
    rows: list[dict[str, str]] = []
    saw_category = False
    dropped: Counter[str] = Counter()
    for where, row in iter_rows(source, revision):
        report.rows_read += 1
        problem = row_problem(row)
        if problem is not None:
            message = f"{where}: {problem}"
            if not skip_bad_rows:
                raise DataError(
                    f"{message}. Fix the row, or pass --skip-bad-rows to skip invalid rows "
                    "(they are counted and reported)."
                )
            report.bad_rows += 1
            if len(report.bad_row_examples) < 10:
                report.bad_row_examples.append(message)
            continue
        if drop_translation:
            category = row.get("category")
            if category is not None:
                saw_category = True
                if pattern.search(str(category)):
                    dropped[str(category)] += 1
                    continue
        rows.append({name: row[name] for name in REQUIRED_FIELDS})
    if drop_translation and not saw_category:
        raise DataError(
            f"{source}: --drop-translation needs a 'category' column and this data has none; "
            "use izumi-lab/llm-japanese-dataset-vanilla (translation already removed) or drop the flag"
        )
    report.translation_rows_dropped = sum(dropped.values())
    report.translation_categories = dict(dropped)
    if max_rows is not None and len(rows) > max_rows:
        rows = rows[:max_rows]
        report.rows_after_max_rows = max_rows
    if not rows:
        raise DataError(f"{source}: no usable rows (read {report.rows_read}, invalid {report.bad_rows})")
    return rows, report


def split_rows(rows: list[dict[str, str]], val_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The paper's hold-out: datasets' train_test_split(test_size=val_size, seed=seed)."""
    if val_size == 0:
        return rows, []
    if val_size >= len(rows):
        raise DataError(
            f"--val-size {val_size} leaves no training rows out of {len(rows)}; "
            f"pass a smaller --val-size (e.g. {max(1, len(rows) // 10)}) or 0 for no validation"
        )
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    parts = dataset.train_test_split(test_size=val_size, shuffle=True, seed=seed)
    return parts["train"].to_list(), parts["test"].to_list()


# ---------------------------------------------------------------- tokenizing


@dataclass
class TokenizedSet:
    """Examples as flat arrays: example i is tokens[offsets[i]:offsets[i+1]].

    `masked[i]` leading tokens of example i are excluded from the loss (0 for loss on everything).
    """

    tokens: np.ndarray  # int32
    offsets: np.ndarray  # int64, len n+1
    masked: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def example(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def target_tokens(self) -> np.ndarray:
        """Positions each example contributes to the loss (the first token is never predicted)."""
        return self.lengths - np.maximum(self.masked, 1)

    def save(self, path: Path) -> None:
        with atomic_write(path) as tmp:
            np.savez(tmp, tokens=self.tokens, offsets=self.offsets, masked=self.masked)

    @classmethod
    def load(cls, path: Path) -> TokenizedSet:
        with np.load(path, allow_pickle=False) as f:
            return cls(tokens=f["tokens"], offsets=f["offsets"], masked=f["masked"])


def tokenize_rows(
    rows: list[dict[str, str]],
    tokenizer,
    seq_len: int,
    language: str,
    loss_on: str,
    report: DataReport,
    batch_size: int = 1000,
    progress: bool = False,
) -> TokenizedSet:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no EOS token; the recipe appends EOS to each example")
    tokens: list[np.ndarray] = []
    lengths: list[int] = []
    masked: list[int] = []
    iterator = range(0, len(rows), batch_size)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="tokenizing", unit_scale=batch_size, unit="row")
    for start in iterator:
        batch = rows[start : start + batch_size]
        prompts = [instruction_prompt(r["instruction"], r["input"], language=language) for r in batch]
        full = tokenizer(
            [p + r["output"] for p, r in zip(prompts, batch)],
            truncation=True,
            max_length=seq_len,
            padding=False,
        )["input_ids"]
        if loss_on == "response":
            prompt_ids = tokenizer(prompts, truncation=True, max_length=seq_len, padding=False)["input_ids"]
        for j, ids in enumerate(full):
            was_cut = len(ids) == seq_len
            if ids[-1] != eos and len(ids) < seq_len:
                ids = ids + [eos]
                report.eos_added += 1
            report.truncated += was_cut
            n_masked = len(prompt_ids[j]) if loss_on == "response" else 0
            if loss_on == "response" and n_masked >= len(ids):
                report.no_response_tokens += 1
                continue
            tokens.append(np.asarray(ids, dtype=np.int32))
            lengths.append(len(ids))
            masked.append(n_masked)
    if not tokens:
        raise DataError("no example has a response token left within seq_len; raise --seq-len")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenizedSet(np.concatenate(tokens), offsets, np.asarray(masked, dtype=np.int32))


def cache_key(config, tokenizer) -> str:
    """Everything that changes the tokenized examples; the data file's size and mtime stand for its content."""
    path = Path(config.data)
    stamp = [path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else [config.data_revision]
    parts = [
        config.data,
        stamp,
        config.seq_len,
        config.language,
        config.loss_on,
        config.val_size,
        config.split_seed,
        config.max_rows,
        config.drop_translation,
        config.translation_pattern,
        config.skip_bad_rows,
        tokenizer.name_or_path,
        len(tokenizer),
        tokenizer.eos_token_id,
        instruction_prompt("{i}", "{x}", config.language),
        instruction_prompt("{i}", "", config.language),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


@dataclass
class PreparedData:
    train: TokenizedSet
    val: TokenizedSet | None
    report: DataReport


def prepare_data(config, tokenizer, cache_dir: Path | None = None, progress: bool = False) -> PreparedData:
    """Rows -> validated -> split -> tokenized; cached as .npz under cache_dir when given."""
    key = cache_key(config, tokenizer)
    if cache_dir is not None:
        files = [cache_dir / f"{key}.{name}.npz" for name in ("train", "val")]
        report_file = cache_dir / f"{key}.report.json"
        if files[0].exists() and report_file.exists():
            report = DataReport(**json.loads(report_file.read_text(encoding="utf-8")))
            val = TokenizedSet.load(files[1]) if files[1].exists() else None
            return PreparedData(TokenizedSet.load(files[0]), val, report)
    rows, report = load_rows(
        config.data,
        config.data_revision,
        config.skip_bad_rows,
        config.drop_translation,
        config.translation_pattern,
        config.max_rows,
    )
    train_rows, val_rows = split_rows(rows, config.val_size, config.split_seed)
    report.train_rows, report.val_rows = len(train_rows), len(val_rows)
    train = tokenize_rows(
        train_rows, tokenizer, config.seq_len, config.language, config.loss_on, report, progress=progress
    )
    val = (
        tokenize_rows(val_rows, tokenizer, config.seq_len, config.language, config.loss_on, DataReport(""))
        if val_rows
        else None
    )
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        train.save(files[0])
        if val is not None:
            val.save(files[1])
        with atomic_write(report_file) as tmp:  # written last: its presence marks a complete cache
            tmp.write_text(json.dumps(report.__dict__, ensure_ascii=False), encoding="utf-8")
    return PreparedData(train, val, report)
