"""The vqa_ppl task: dataset construction from task metadata, requests per doc, per-doc results.

lm-eval calls `build_dataset(**metadata)` (the YAML's `custom_dataset`) with `--model_args` and
`--metadata` merged, so the task sees the model's tokenizer name. Each doc carries its request
strings and the counts of its scored text; run-level facts (data source, sample, policy, how tokens
were counted) live in `RUNS`, keyed by the `run` field every doc carries, for the report metrics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from jinstruct.prompts import vqa_prompt

from .counting import OVERLENGTH_POLICIES, count_words, load_model_tokenizer, plan_requests
from .data import DEFAULT_SAMPLE_SEED, VQA_URL, load_pairs, resolve_source, subsample


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
    all_pairs = load_pairs(source)
    pairs = subsample(all_pairs, sample, seed)

    prompts = [vqa_prompt(p.question, language) for p in pairs]
    plans = plan_requests(prompts, [p.answer for p in pairs], mt, policy, rows=[p.row for p in pairs])
    n_skipped = sum(plan is None for plan in plans)
    n_over = n_skipped + sum(plan.truncated for plan in plans if plan is not None)
    if n_skipped == len(plans):
        raise ValueError(f"all {len(plans)} selected VQA pairs exceed max length {mt.max_length}.")
    n_empty = sum(not p.answer.strip() for p, plan in zip(pairs, plans) if plan is not None)
    if n_empty == len(plans) - n_skipped:
        raise ValueError(f"{source.path}: every one of the {n_empty} VQA pairs to score has an empty answer, so "
                         "the perplexity would be of the EOS token alone. Fix: point vqa_path at a file with answers.")

    info = RunInfo(
        language=language,
        data_origin=source.origin,
        data_path=str(source.path),
        data_sha256=source.sha256,
        n_pairs_in_file=len(all_pairs),
        sample=sample,
        sample_seed=seed,
        n_selected=len(pairs),
        n_over_length=n_over,
        n_skipped=n_skipped,
        n_empty_answers=n_empty,
        overlength_policy=policy,
        tokenizer=mt.name,
        pair_encoding=mt.pair_encoding,
        add_bos_token=mt.add_bos_token,
        max_length=mt.max_length,
        eos_token=mt.eos_token,
    )
    key = hashlib.sha1(json.dumps(asdict(info), sort_keys=True).encode()).hexdigest()[:12]
    RUNS[key] = info

    rows = [
        {
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
        for pair, plan in zip(pairs, plans)
        if plan is not None
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


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
