"""The vqa_ppl task class: dataset construction from task metadata, requests per doc, per-doc records.

lm-eval gives the task its metadata with `--model_args` and `--metadata` merged, so the task sees the
model's tokenizer name. Each doc carries its request strings and the counts of its scored text; the
run-level facts (data source, sample, policy, how tokens were counted) stay with the task, and every
record it emits points to them, for the report metrics (metrics.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

from jinstruct.prompts import vqa_prompt

from .counting import OVERLENGTH_POLICIES, count_words, load_model_tokenizer, plan_requests, prompt_cache
from .data import DEFAULT_SAMPLE_SEED, VQA_URL, count_pairs, iter_pairs, resolve_source, sample_rows
from .metrics import METRIC_NAMES, RunInfo, VqaRecord


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None


@dataclass
class DocRecord:
    """process_results of a vqa_ppl task: the doc's record, pointing to the facts of the task's run.
    Its repr is what the results JSON records."""

    run: RunInfo | None = None

    def __call__(self, doc: dict, results: list[tuple[float, bool]]) -> dict[str, VqaRecord]:
        (ll_full, _), (ll_rest, _) = results[0], results[1]
        record = VqaRecord(
            self.run,
            ll_rest - ll_full,  # NLL of answer + EOS
            doc["n_tokens"],
            doc["n_chars"],
            doc["n_bytes"],
            doc["n_words"],
            bool(doc["truncated"]),
            bool(doc["exact"]),
        )
        return dict.fromkeys(METRIC_NAMES, record)

    def __repr__(self) -> str:
        return "vqa_ppl record per doc: " + ", ".join(VqaRecord._fields)


class VqaTask(ConfigurableTask):
    """vqa_ppl / vqa_ppl_en (metadata.language picks the prompt): the docs come from build_dataset;
    the run's facts stay with the task, for the report metrics."""

    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        config = dict(config)
        config.pop("class", None)
        self.records = DocRecord()
        config["process_results"] = self.records
        super().__init__(config=config, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = dict(self.config.metadata or {})
        self.dataset, self.records.run = build_dataset(str(meta.pop("language", "ja")), **meta)


def build_dataset(language: str, /, **metadata: Any):
    """The docs of vqa_ppl / vqa_ppl_en and the facts of their run: (a DatasetDict with one "test"
    split, RunInfo).

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
        raise ValueError(
            f"{source.path}: every one of the {n_empty} VQA pairs to score has an empty answer, so "
            "the perplexity would be of the EOS token alone. Fix: point vqa_path at a file with answers."
        )

    run = RunInfo(
        key=key,
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
    return datasets.DatasetDict({"test": ds}), run


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
