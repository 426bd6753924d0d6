"""The vqa_ppl task: dataset construction from task metadata, requests per doc, per-doc results.

lm-eval calls `build_dataset(**metadata)` (the YAML's `custom_dataset`) with `--model_args` and
`--metadata` merged, so the task sees the model's tokenizer name. Each doc carries its request
strings and the counts of its scored text; run-level facts (data source, sample, policy, how tokens
were counted) live in `RUNS`, keyed by the `run` field every doc carries, for the report metrics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from jinstruct.prompts import vqa_prompt

from .counting import OVERLENGTH_POLICIES, count_words, load_model_tokenizer, plan_requests, prompt_cache
from .data import DEFAULT_SAMPLE_SEED, VQA_URL, count_pairs, iter_pairs, resolve_source, sample_rows


@dataclass(frozen=True)
class RunInfo:
    language: str
    data_origin: str
    data_path: str
    data_sha256: str
    n_pairs_in_file: int
    sample: int | None
    sample_seed: int
    n_selected: int
    n_over_length: int  # among the selected pairs
    n_skipped: int  # over-length pairs left out (policy "skip")
    n_empty_answers: int  # scored pairs whose answer is empty: their figure is the EOS token's alone
    overlength_policy: str
    tokenizer: str
    pair_encoding: str
    add_bos_token: bool | None
    max_length: int
    eos_token: str

    def counting(self) -> str:
        return (
            f"tokenizer={self.tokenizer} add_bos_token={self.add_bos_token}; tokens as lm-eval's HF model "
            f"encodes (backend pair encoding: {self.pair_encoding}), prompt masked by len(tok(prompt)) as the paper; scored text answer+EOS "
            f"({self.eos_token}), EOS NLL in every figure; units: tokens incl. EOS, answer chars, UTF-8 "
            f"bytes, fugashi+unidic-lite words; over-length (input > {self.max_length}): {self.overlength_policy}"
        )

    def data(self) -> str:
        sample = "all" if self.sample is None else f"{self.sample} (seed {self.sample_seed})"
        return (
            f"{self.data_origin}: {self.data_path} sha256={self.data_sha256[:16]}; "
            f"pairs in file {self.n_pairs_in_file}; sample {sample}; selected {self.n_selected}; "
            f"over-length {self.n_over_length}; skipped {self.n_skipped}; empty answers {self.n_empty_answers}"
        )


RUNS: dict[str, RunInfo] = {}


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None


def build_dataset(language: str, /, **metadata: Any):
    """The `custom_dataset` for vqa_ppl / vqa_ppl_en: a DatasetDict with one "test" split.

    Metadata read: vqa_path, vqa_cache_dir, vqa_url, vqa_sha256, vqa_sample, vqa_seed,
    vqa_overlength ("truncate" | "skip" | "error"), vqa_tokenizer, vqa_max_length, plus the model
    args lm-eval merges in (pretrained, tokenizer, revision, add_bos_token, max_length, ...).
    """
    import datasets
    import pyarrow.compute as pc

    policy = str(metadata.get("vqa_overlength") or "truncate")
    if policy not in OVERLENGTH_POLICIES:
        raise ValueError(f"vqa_overlength must be one of {OVERLENGTH_POLICIES}, got {policy!r}.")
    sample = _int_or_none(metadata.get("vqa_sample"), "vqa_sample")
    seed = _int_or_none(metadata.get("vqa_seed"), "vqa_seed")
    seed = DEFAULT_SAMPLE_SEED if seed is None else seed
    mt = load_model_tokenizer(metadata)  # first: a missing tokenizer should fail before any download

    source = resolve_source(
        metadata.get("vqa_path"),
        cache_dir=metadata.get("vqa_cache_dir"),
        url=str(metadata.get("vqa_url") or VQA_URL),
        expected_sha256=metadata.get("vqa_sha256"),
    )
    n_pairs = count_pairs(str(source.path), source.sha256)
    selected = sample_rows(n_pairs, sample, seed)
    n_selected = n_pairs if selected is None else len(selected)

    # The run key names what decides every doc (data, sample, policy, tokenizer, lengths), so it is
    # known before the docs are made; the counts that follow from them are filled in afterwards.
    decided = {
        "language": language,
        "data_sha256": source.sha256,
        "sample": sample,
        "sample_seed": seed,
        "overlength_policy": policy,
        "tokenizer": mt.name,
        # A folder's tokenizer can be retrained in place: its vocabulary, not only its name, decides.
        "vocab": hashlib.sha1(json.dumps(sorted(mt.tokenizer.get_vocab().items())).encode()).hexdigest(),
        "pair_encoding": mt.pair_encoding,
        "add_bos_token": mt.add_bos_token,
        "max_length": mt.max_length,
        "eos_token": mt.eos_token,
    }
    key = hashlib.sha1(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:12]
    # Docs stream from the file into HF datasets' Arrow cache in chunks: memory stays bounded by a
    # chunk whatever the file size, and a second run with the same key reads the cache.
    ds = datasets.Dataset.from_generator(
        _docs,
        gen_kwargs={
            "path": str(source.path),
            "sha256": source.sha256,
            "selected": selected,
            "language": language,
            "policy": policy,
            "key": key,
            "tokenizer_metadata": {k: metadata[k] for k in _TOKENIZER_KEYS if metadata.get(k) is not None},
        },
    )
    if len(ds) == 0:
        raise ValueError(f"all {n_selected} selected VQA pairs exceed max length {mt.max_length}.")
    n_skipped = n_selected - len(ds)
    n_truncated = sum(ds.data.column("truncated").to_pylist())
    # Counted in Arrow, without materialising 793k answers as Python strings.
    n_empty = pc.sum(pc.equal(pc.utf8_trim_whitespace(ds.data.column("answer")), "")).as_py() or 0
    if n_empty == len(ds):
        raise ValueError(f"{source.path}: every one of the {n_empty} VQA pairs to score has an empty answer, so "
                         "the perplexity would be of the EOS token alone. Fix: point vqa_path at a file with answers.")

    RUNS[key] = RunInfo(
        language=language,
        data_origin=source.origin,
        data_path=str(source.path),
        data_sha256=source.sha256,
        n_pairs_in_file=n_pairs,
        sample=sample,
        sample_seed=seed,
        n_selected=n_selected,
        n_over_length=n_skipped + n_truncated,
        n_skipped=n_skipped,
        n_empty_answers=n_empty,
        overlength_policy=policy,
        tokenizer=mt.name,
        pair_encoding=mt.pair_encoding,
        add_bos_token=mt.add_bos_token,
        max_length=mt.max_length,
        eos_token=mt.eos_token,
    )
    return datasets.DatasetDict({"test": ds})


# The metadata keys load_model_tokenizer reads (the generator reloads the same cached tokenizer).
_TOKENIZER_KEYS = (
    "vqa_tokenizer",
    "tokenizer",
    "pretrained",
    "add_bos_token",
    "revision",
    "trust_remote_code",
    "use_fast_tokenizer",
    "subfolder",
    "vqa_max_length",
    "max_length",
    "tokenization",
)


def _selected_pairs(path: str, selected: list[int] | None) -> Iterator:
    wanted = iter(selected) if selected is not None else None
    next_row = next(wanted, None) if wanted is not None else None
    for pair in iter_pairs(Path(path)):
        if wanted is None:
            yield pair
        elif pair.row == next_row:
            yield pair
            next_row = next(wanted, None)
            if next_row is None:
                return


def _docs(path, sha256, selected, language, policy, key, tokenizer_metadata, chunk_size: int = 8192):
    """The docs of one run, chunk by chunk (the `datasets` generator)."""
    from tqdm.auto import tqdm

    mt = load_model_tokenizer(tokenizer_metadata)
    cache = prompt_cache(mt)
    total = len(selected) if selected is not None else count_pairs(path, sha256)
    bar = tqdm(total=total, desc="vqa_ppl: building docs", unit="pair", disable=total < 50_000)
    pairs = _selected_pairs(path, selected)
    while chunk := list(islice(pairs, chunk_size)):
        prompts = [vqa_prompt(p.question, language) for p in chunk]
        plans = plan_requests(
            prompts, [p.answer for p in chunk], mt, policy, rows=[p.row for p in chunk], cache=cache
        )
        for pair, plan in zip(chunk, plans):
            if plan is None:
                continue
            yield {
                "row": pair.row,
                "image_id": pair.image_id,
                "qa_id": pair.qa_id,
                "question": pair.question,
                "answer": pair.answer,
                "context": plan.context,
                "rest": plan.rest,
                "target": plan.target,
                "n_tokens": plan.n_tokens,
                "n_chars": len(pair.answer),
                "n_bytes": len(pair.answer.encode("utf-8")),
                "n_words": count_words(pair.answer),
                "truncated": plan.truncated,
                "exact": plan.exact,
                "run": key,
            }
        bar.update(len(chunk))
    bar.close()


def doc_to_text(doc: dict) -> str:
    return doc["context"]


def doc_to_choice(doc: dict) -> list[str]:
    # Request A scores rest+answer+EOS, request B scores rest alone; A - B is the answer+EOS NLL.
    return [doc["rest"] + doc["target"], doc["rest"]]


def process_results(doc: dict, results: list[tuple[float, bool]]) -> dict[str, tuple]:
    (ll_full, _), (ll_rest, _) = results[0], results[1]
    record = (
        doc["run"],
        ll_rest - ll_full,  # NLL of answer + EOS
        doc["n_tokens"],
        doc["n_chars"],
        doc["n_bytes"],
        doc["n_words"],
        bool(doc["truncated"]),
        bool(doc["exact"]),
    )
    from .metrics import METRIC_NAMES

    return dict.fromkeys(METRIC_NAMES, record)
