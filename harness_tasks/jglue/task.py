"""The JGLUE task class behind every JNLI, MARC-ja and JCommonsenseQA YAML.

A YAML says which dataset, prompt version, label words (`doc_to_choice`) and few-shot draw it wants;
this class fills in the prompt from `prompts/jglue.yaml`, loads the data from the first working source
and replays the reference harness's few-shot stream. Where a doc's fields go in the prompt, and which
columns hold per-doc choices, is prompt data too. Everything else is lm-eval's ConfigurableTask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lm_eval.api.task import ConfigurableTask

from jinstruct.harness_tasks.jglue.data import DATASETS, load_jglue
from jinstruct.harness_tasks.jglue.fewshot import ReferenceReplaySampler
from jinstruct.harness_tasks.jglue.metrics import register_with_lm_eval
from jinstruct.prompts import FewShotPrompt, jglue_prompt

DOC_INDEX = "doc_index"  # position of a validation doc in dataset order, added at load time
FEWSHOT_DRAWS = ("plain", "stratified")


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocToText:
    """doc_to_text of a JGLUE task; its repr is what the results JSON records."""

    prompt: FewShotPrompt

    def __call__(self, doc: dict[str, Any]) -> str:
        return self.prompt.render(doc)

    def __repr__(self) -> str:
        return f"prompts/jglue.yaml {self.prompt.family} {self.prompt.version}: {self.prompt.text!r}"


@dataclass(frozen=True)
class DocChoices:
    """doc_to_choice of a task whose choices differ per doc: the texts in the prompt's choice columns."""

    prompt: FewShotPrompt

    def __call__(self, doc: dict[str, Any]) -> list[str]:
        return self.prompt.choices_of(doc)

    def __repr__(self) -> str:
        return f"per-doc choices {list(self.prompt.choice_fields)}"


@dataclass(frozen=True)
class GoldIndex:
    """The shots' answer of a prompt with `shot_target: index`: the gold index as a digit."""

    def __call__(self, doc: dict[str, Any]) -> str:
        return str(doc["label"])

    def __repr__(self) -> str:
        return "gold index digit (shots only)"


class JGLUETask(ConfigurableTask):
    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        config = dict(config)
        config.pop("class", None)
        meta = dict(config.get("metadata") or {})
        family = meta.get("family")
        if family not in DATASETS:
            raise ValueError(f"task {config.get('task')}: metadata.family must be one of {sorted(DATASETS)}")
        draw = meta.get("fewshot_draw", "plain")
        if draw not in FEWSHOT_DRAWS:
            raise ValueError(
                f"task {config.get('task')}: metadata.fewshot_draw must be one of {FEWSHOT_DRAWS}"
            )
        labels = tuple(config.get("doc_to_choice") or ())
        register_with_lm_eval()

        self.family, self.stratified = family, draw == "stratified"
        self.prompt = jglue_prompt(family, str(meta["prompt_version"]), labels)
        n_choices = len(DATASETS[family].label_names)
        if self.prompt.choice_fields:
            if labels:
                raise ValueError(
                    f"task {config.get('task')}: {family} has per-doc choices; drop doc_to_choice"
                )
            doc_to_choice: list[str] | DocChoices = DocChoices(self.prompt)
        elif len(labels) != n_choices:
            raise ValueError(f"task {config.get('task')}: doc_to_choice needs {n_choices} words")
        else:
            doc_to_choice = list(labels)
        fewshot_config = {**(config.get("fewshot_config") or {}), "sampler": ReferenceReplaySampler}
        if self.prompt.shot_target == "index":
            fewshot_config["doc_to_target"] = GoldIndex()
        if self.prompt.warning:
            # The reference prints this (framed in #) when the prompt is first used.
            log.warning("%s\n\n%s\n\n%s", "#" * 100, self.prompt.warning, "#" * 100)
        config.update(
            description=self.prompt.description,
            doc_to_text=DocToText(self.prompt),
            doc_to_choice=doc_to_choice,
            doc_to_target="label",
            fewshot_delimiter=self.prompt.sep,
            target_delimiter="",  # the answer follows the prompt with no space
            fewshot_config=fewshot_config,
        )
        super().__init__(config=config, **kwargs)
        self.sampler.configure(
            n_eval=len(self.eval_docs),
            pool_targets=list(self.dataset[self.config.fewshot_split]["label"]),
            stratified=self.stratified,
            task=str(self.config.task),
            pool_name=str(self.config.fewshot_split),
        )

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = self.config.metadata or {}
        loaded = load_jglue(
            self.family,
            data_dir=meta.get("data_dir"),
            train_file=meta.get("train_file"),
            validation_file=meta.get("validation_file"),
            prefer_version=str(meta.get("jglue_version", "1.1")),
        )
        wanted, used = str(meta.get("jglue_version", "1.1")), loaded.source.get("jglue_version")
        if used and used != wanted:
            log.warning(
                "%s: the reference task scores JGLUE v%s; this local copy is v%s",
                self.config.task,
                wanted,
                used,
            )
        validation = loaded.dataset["validation"]
        loaded.dataset["validation"] = validation.add_column(DOC_INDEX, list(range(len(validation))))
        self.dataset = loaded.dataset
        # Recorded in the results JSON (configs.<task>.metadata): which rows this score is over.
        self.config.metadata = {
            **meta,
            "data": loaded.source,
            "n_train": len(loaded.dataset["train"]),
            "n_validation": len(validation),
        }

    def fewshot_context(self, doc: dict[str, Any], num_fewshot: int, *args: Any, **kwargs: Any):
        # lm-eval gives a sampler no eval doc when the pool is another split; the replay needs it.
        self.sampler.eval_doc_index = doc[DOC_INDEX]
        return super().fewshot_context(doc, num_fewshot, *args, **kwargs)

    def process_results(self, doc: dict[str, Any], results):
        out = super().process_results(doc, results)
        lls = [ll for ll, _ in results]
        pred, gold = max(range(len(lls)), key=lls.__getitem__), doc["label"]
        for name in ("balanced_acc", "macro_f1", "mcc"):
            if name in self._metric_fn_list:
                out[name] = (gold, pred)
        return out
