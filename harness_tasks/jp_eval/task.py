"""The task class behind every JSQuAD, JAQKET v2, XLSum-ja and MGSM-ja YAML (lm-eval `generate_until`).

A YAML names the family and prompt version in its metadata; this class builds each doc's context the
way the reference harness (Stability-AI's jp-stable branch; README "Generation tasks") does: the
`Random(42)` few-shot stream over the whole evaluated split, MGSM's and JAQKET's over-length retry
that draws again, XLSum's per-article truncation, and a per-doc generation request (stop strings and
token limit). Token counts use the model's own tokenizer, named by the model args that lm-eval merges
into the task metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lm_eval.api.task import ConfigurableTask

from jinstruct.harness_tasks.jglue.fewshot import replay_shots
from jinstruct.harness_tasks.jglue.task import DOC_INDEX
from jinstruct.harness_tasks.vqa.counting import ModelTokenizer, load_model_tokenizer

from . import data as data_mod
from .fewshot import RetryDraw, replay_with_retry
from .metrics import extract_mgsm_answer, register_with_lm_eval, squad_scores
from .prompts import FAMILIES, GenerationPrompt, generation_prompt
from .truncation import truncate_articles

log = logging.getLogger(__name__)

REFERENCE_MAX_GEN_TOKS = 256  # the reference model wrapper's max_gen_toks
XLSUM_SUMMARY_SLACK = 10  # XLSum's limit: gold summary tokens + 10
JAQKET_BEHAVIOUR = (
    "reference head effdbea (since 2023-10-24): {n} passages per question, questions without an "
    "answer-bearing passage dropped, shots show all their passages, over-length prompts rebuilt with one "
    "shot fewer (drawing again from the stream)"
)
# Tokenizers of the runs in this process, for the aggregations that need them (XLSum's rouge2).
TOKENIZERS: dict[str, ModelTokenizer] = {}


class PromptTooLongError(ValueError):
    """Even the 0-shot prompt exceeds the model's length budget."""


def load_task_tokenizer(meta: dict[str, Any]) -> ModelTokenizer:
    """The model's tokenizer from the merged model args (as vqa_ppl); `jp_eval_tokenizer` /
    `jp_eval_max_length` override the name and the maximum length."""
    return load_model_tokenizer(
        meta,
        prefix="jp_eval",
        purpose="the JP Eval generation tasks count tokens with the model's own tokenizer (generation "
        "limits, over-length shot reduction)",
    )


def _passage(doc: dict[str, Any]) -> str:
    return doc["context"].split("[SEP]")[-1].strip()


@dataclass(frozen=True)
class DocFormat:
    """How one family's docs fill its prompt; its repr is what the results JSON records."""

    prompt: GenerationPrompt

    def text(self, doc: dict[str, Any]) -> str:
        p, family = self.prompt, self.prompt.family
        if family in ("jsquad", "jsquad12"):
            return p.render(title=doc["title"], passage=_passage(doc), question=doc["question"])
        if family == "jaqket2":
            ctxs = doc["ctxs"]
            passages = p.passage_join.join(
                p.passage.format(title=t, text=x) for t, x in zip(ctxs["title"], ctxs["text"])
            )
            return p.render(passages=passages, question=doc["question"])
        if family == "xlsum":
            return p.render(text=doc["text"])
        return p.render(question=doc["question"].replace("問題：", ""))

    def target(self, doc: dict[str, Any]) -> str:
        family = self.prompt.family
        if family == "xlsum":
            return doc["summary"]
        if family == "mgsm":
            return (doc.get("answer") or "").replace("ステップごとの答え：", "")
        return doc["answers"]["text"][0]

    def __call__(self, doc: dict[str, Any]) -> str:
        return self.text(doc)

    def __repr__(self) -> str:
        p = self.prompt
        return f"prompts/jp_eval.yaml {p.family} {p.version}: {p.text!r}"


class JPGenerationTask(ConfigurableTask):
    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        config = dict(config)
        config.pop("class", None)
        meta = dict(config.get("metadata") or {})
        family = meta.get("family")
        if family not in FAMILIES:
            raise ValueError(f"task {config.get('task')}: metadata.family must be one of {FAMILIES}")
        register_with_lm_eval()
        self.family = family
        # not `self.prompt`: ConfigurableTask keeps its promptsource prompt there
        self.gen_prompt = generation_prompt(family, str(meta["prompt_version"]))
        self.format = DocFormat(self.gen_prompt)
        config.update(
            output_type="generate_until",
            description=self.gen_prompt.description,
            doc_to_text=self.format,
            doc_to_target=self.format.target,
            fewshot_delimiter=self.gen_prompt.fewshot_sep,
            target_delimiter="",
            generation_kwargs={"until": [self.gen_prompt.stop], "do_sample": False},
        )
        super().__init__(config=config, **kwargs)
        self._tokenizer: ModelTokenizer | None = None
        self._contexts: dict[int, dict[int, str]] = {}  # num_fewshot -> doc index -> context
        self._retry: dict[int, list[RetryDraw]] = {}
        self._plain: dict[int, list[list[int]]] = {}

    # --- data ---------------------------------------------------------------------------------------

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import datasets

        meta = dict(self.config.metadata or {})
        extra: dict[str, Any] = {}
        if self.family in ("jsquad", "jsquad12"):
            loaded = data_mod.load_jsquad(meta)
        elif self.family == "jaqket2":
            n = int(meta.get("jaqket_num_contexts", 5))
            loaded = data_mod.load_jaqket(meta, n)
            extra["jaqket_behaviour"] = JAQKET_BEHAVIOUR.format(n=n)
        elif self.family == "xlsum":
            loaded = data_mod.load_xlsum(meta)
        else:
            loaded = data_mod.load_mgsm(meta)
        splits = {}
        for split, rows in loaded.splits.items():
            rows = [{**r, DOC_INDEX: i} for i, r in enumerate(rows)]
            splits[split] = datasets.Dataset.from_list(rows)
        self.dataset = datasets.DatasetDict(splits)
        self.config.metadata = {
            **meta,
            **extra,
            "data": loaded.source,
            **{f"n_{s}": len(r) for s, r in loaded.splits.items()},
        }

    # --- tokens -------------------------------------------------------------------------------------

    @property
    def tokens(self) -> ModelTokenizer:
        if self._tokenizer is None:
            self._tokenizer = load_task_tokenizer(dict(self.config.metadata or {}))
            TOKENIZERS[self._tokenizer.name] = self._tokenizer
            self.config.metadata = {
                **self.config.metadata,
                "tokenizer": self._tokenizer.name,
                "max_length": self._tokenizer.max_length,
            }
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        """The reference's `_tokenize`: no special tokens."""
        return self.tokens.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokens.tokenizer.decode(ids, skip_special_tokens=True)

    @property
    def dynamic_max_length(self) -> bool:
        return str((self.config.metadata or {}).get("dynamic_max_length", True)).lower() != "false"

    @property
    def default_max_gen_toks(self) -> int:
        return int((self.config.metadata or {}).get("max_gen_toks") or REFERENCE_MAX_GEN_TOKS)

    def max_gen_toks(self, doc: dict[str, Any]) -> int:
        """The reference's per-doc generation limit in model tokens."""
        if self.family == "mgsm" or not self.dynamic_max_length:
            return self.default_max_gen_toks
        if self.family == "xlsum":
            return len(self.encode(doc["summary"])) + XLSUM_SUMMARY_SLACK
        return self._longest_answer(doc)

    def _longest_answer(self, doc: dict[str, Any]) -> int:
        return max(len(self.encode(a)) for a in doc["answers"]["text"])

    def until(self) -> list[str]:
        if self.family == "mgsm":
            return [self.tokens.tokenizer.eos_token, self.gen_prompt.stop]
        return [self.gen_prompt.stop]

    # --- contexts -----------------------------------------------------------------------------------

    def _pool(self) -> Sequence[dict[str, Any]]:
        return self.dataset[self.config.fewshot_split]

    def _build(self, doc: dict[str, Any], shots: Sequence[int]) -> str:
        pool = self._pool()
        pairs = [(self.format.text(pool[i]), self.format.target(pool[i])) for i in shots]
        return self.gen_prompt.context(pairs, self.format.text(doc))

    def _retry_draws(self, k: int) -> list[RetryDraw]:
        if k not in self._retry:
            docs = self.eval_docs

            def budget(doc: dict[str, Any]) -> int:
                if self.family == "mgsm":
                    return self.tokens.max_length - self.default_max_gen_toks
                return self.tokens.max_length - self._longest_answer(doc)

            def fits(i: int, shots: Sequence[int]) -> bool:
                return len(self.encode(self._build(docs[i], shots))) <= budget(docs[i])

            self._retry[k] = replay_with_retry(len(docs), len(self._pool()), k, fits)
            reductions = sum(bool(d.failed_attempts) for d in self._retry[k])
            self.config.metadata = {**self.config.metadata, f"docs_with_fewer_shots_{k}shot": reductions}
            if reductions:
                log.info(
                    "%s: %d of %d prompts did not fit with %d shots and were rebuilt with fewer",
                    self.config.task,
                    reductions,
                    len(docs),
                    k,
                )
        return self._retry[k]

    def context_for(self, doc_index: int, k: int) -> str:
        cache = self._contexts.setdefault(k, {})
        if doc_index not in cache:
            doc = self.eval_docs[doc_index]
            if self.family in ("mgsm", "jaqket2"):
                draw = self._retry_draws(k)[doc_index]
                if draw.shots is None:
                    raise PromptTooLongError(
                        f"{self.config.task}: doc {doc_index} does not fit the model's {self.tokens.max_length} "
                        "tokens even without shots (the reference fails on it too)"
                    )
                ctx = self._build(doc, draw.shots)
            else:
                if k not in self._plain:
                    self._plain[k] = replay_shots(len(self.eval_docs), [0] * len(self._pool()), k)
                ctx = self._build(doc, self._plain[k][doc_index])
                if self.family == "xlsum":
                    ctx = self._truncate(ctx, doc)
            cache[doc_index] = ctx
        return cache[doc_index]

    def _truncate(self, ctx: str, doc: dict[str, Any]) -> str:
        p = self.gen_prompt
        return truncate_articles(
            ctx,
            self.tokens.max_length - self.max_gen_toks(doc),
            encode=self.encode,
            decode=self.decode,
            article_prompt=p.article_prompt,
            summary_prompt=p.summary_prompt,
            stop=p.stop,
            replace=p.truncation_replace,
        )

    # --- lm-eval hooks ------------------------------------------------------------------------------

    def fewshot_context(self, doc: dict[str, Any], num_fewshot: int, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("apply_chat_template"):
            raise ValueError(
                f"{self.config.task} reproduces the reference's raw prompts (prompt version "
                f"{self.gen_prompt.version}); --apply_chat_template would change them. Pick the prompt version "
                "made for the model's format instead (0.6 for Llama-2-chat style)."
            )
        return self.context_for(doc[DOC_INDEX], int(num_fewshot or 0))

    def construct_requests(self, doc: dict[str, Any], ctx: str, **kwargs: Any):
        inst = super().construct_requests(doc=doc, ctx=ctx, **kwargs)
        gen = {"until": self.until(), "max_gen_toks": self.max_gen_toks(doc), "do_sample": False}
        inst.arguments = (inst.arguments[0], gen)
        return inst

    def process_results(self, doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
        completion = results[0]
        if self.family == "mgsm":
            return {"acc": float(extract_mgsm_answer(completion) == doc["answer_number"])}
        if self.family == "xlsum":
            return {
                "rouge2": (completion, doc["summary"], self.tokens.name),
                "rouge2_mecab": (completion, doc["summary"]),
            }
        return squad_scores(completion, doc["answers"]["text"])


def make_rouge2_aggregation(
    tokenizers: dict[str, ModelTokenizer],
) -> Callable[[list[tuple[str, str, str]]], float]:
    from .metrics import rouge2_bootstrap

    def rouge2(items: list[tuple[str, str, str]]) -> float:
        names = {name for _, _, name in items}
        if len(names) != 1 or next(iter(names)) not in tokenizers:
            raise ValueError(f"rouge2 needs the tokenizer of one run; got {sorted(names)}")
        tok = tokenizers[next(iter(names))].tokenizer
        return rouge2_bootstrap([p for p, _, _ in items], [r for _, r, _ in items], tok)

    return rouge2
