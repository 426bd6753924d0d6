"""The XWinograd-ja task class: data from the hub or the original file, the reference's comparison.

Each pair is two requests `loglikelihood("", sentence)`, no prompt, no shots. The reference compares
the two `(loglikelihood, is_greedy)` results as tuples, so a pair scores 1 only when the gold
sentence's tuple is strictly larger: an exact tie in log-likelihood is decided by `is_greedy`, and a
full tie scores 0. How the empty context is tokenized is the model's business: `[eos]` under
`tokenization=reference` (hf-fast), lm-eval's prefix token (BOS, else EOS) under stock `hf`.
"""

from __future__ import annotations

from typing import Any

import datasets
from lm_eval.api.task import ConfigurableTask

from jinstruct.harness_tasks.xwinograd.data import load_xwinograd


def gold_wins(answer: str, results: list[tuple[float, bool]]) -> bool:
    """True when the gold sentence's (loglikelihood, is_greedy) is strictly larger than the other's."""
    first, second = (tuple(r) for r in results)
    return first > second if str(answer) == "1" else second > first


class XWinogradTask(ConfigurableTask):
    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        config = dict(config)
        config.pop("class", None)
        super().__init__(config=config, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = self.config.metadata or {}
        rows, source = load_xwinograd(meta.get("xwinograd_path"))
        # lm-eval's multiple_choice reads these; the sentences stay exactly as in the data.
        rows = rows.map(
            lambda r: {"choices": [r["sentence1"], r["sentence2"]], "label": int(r["answer"]) - 1}
        )
        self.dataset = datasets.DatasetDict({"test": rows})
        self.config.metadata = {**meta, "data": source, "n_test": len(rows)}

    def process_results(self, doc: dict[str, Any], results):
        return {"acc": 1.0 if gold_wins(doc["answer"], results) else 0.0}
