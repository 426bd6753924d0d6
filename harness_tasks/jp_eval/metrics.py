"""The reference's answer scoring for the JP Eval generation tasks.

- JSQuAD / JAQKET (the reference's `lm_eval/jasquad`): answers normalised by emoji removal,
  `neologdn.normalize` and whitespace collapsing; exact match on the normalised strings, F1 over
  fugashi (`-Owakati`, unidic-lite) words with punctuation words dropped; best over the gold answers,
  as a percentage.
- MGSM: the last number in the completion must be an integer equal to `answer_number`.
- XLSum: ROUGE-2 (rouge_score) with the bootstrap median of `BootstrapAggregator` as the figure.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

# Emoji blocks the reference strips with a regex after `emoji.is_emoji` per character.
_EMOJI_BLOCKS = re.compile(
    "[\U0001f600-\U0001f64f\U0001f300-\U0001f5ff\U0001f680-\U0001f6ff\U0001f1e0-\U0001f1ff\U00002702-\U000027b0]+",
    flags=re.UNICODE,
)
# Words dropped before F1: Japanese/full-width punctuation, then ASCII punctuation.
PUNCTUATION = frozenset(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
    + string.punctuation
)
MGSM_NUMBER = re.compile(r"(\-?[0-9\.\,]+)")
INVALID_ANSWER = "[invalid]"


def normalize_answer(text: str) -> str:
    """Emoji removed, neologdn-normalised, whitespace runs collapsed to one space and trimmed."""
    import emoji
    import neologdn

    text = "".join("" if emoji.is_emoji(c) else c for c in text)
    text = _EMOJI_BLOCKS.sub("", text)
    return " ".join(neologdn.normalize(text).split())


@cache
def _tagger():
    from fugashi import Tagger

    return Tagger("-Owakati")


def mecab_words(text: str) -> list[str]:
    """fugashi (unidic-lite) words of the normalised text."""
    return _tagger().parse(normalize_answer(text)).split()


def exact_match_score(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> float:
    pred = [w for w in mecab_words(prediction) if w not in PUNCTUATION]
    ref = [w for w in mecab_words(gold) if w not in PUNCTUATION]
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    """Per-question exact_match and f1 (x 100), each the best over the gold answers."""
    if not golds:
        raise ValueError("a question needs at least one gold answer")
    return {
        "exact_match": 100.0 * max(float(exact_match_score(prediction, g)) for g in golds),
        "f1": 100.0 * max(f1_score(prediction, g) for g in golds),
    }


def extract_mgsm_answer(completion: str) -> int | str:
    """The last number of the completion as an int, or INVALID_ANSWER (the reference's rule)."""
    matches = MGSM_NUMBER.findall(completion)
    if not matches:
        return INVALID_ANSWER
    number = matches[-1].strip(".").replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return INVALID_ANSWER
    return int(value) if value.is_integer() else INVALID_ANSWER


class MecabWords:
    """rouge_score tokenizer: fugashi words of the normalised text (the metric's documented intent)."""

    def tokenize(self, text: str) -> list[str]:
        return mecab_words(text)


def rouge2_bootstrap(
    predictions: Iterable[str], references: Iterable[str], tokenizer: Any, seed: int | None = 1234
) -> float:
    """ROUGE-2 F x 100: the median of rouge_score's 1,000-sample bootstrap over the per-doc scores.

    `tokenizer` is anything with `.tokenize(text) -> list[str]` (a Hugging Face tokenizer gives its
    sub-word pieces, as in the reference). The bootstrap draws from numpy's global generator; it is
    seeded with `seed` for the call and the caller's generator state is restored afterwards.
    """
    import numpy as np
    from rouge_score import rouge_scorer, scoring

    scorer = rouge_scorer.RougeScorer(["rouge2"], tokenizer=tokenizer)
    aggregator = scoring.BootstrapAggregator()
    for pred, ref in zip(predictions, references, strict=True):
        aggregator.add_scores(scorer.score(ref, pred))
    state = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return float(result["rouge2"].mid.fmeasure * 100)


def rouge2_mecab(items: list[tuple[str, str]]) -> float:
    """ROUGE-2 over fugashi words (tokenizer-independent), same bootstrap median; not the published figure."""
    return rouge2_bootstrap([p for p, _ in items], [r for _, r in items], MecabWords())


def _passthrough(items):
    return items


def register_with_lm_eval() -> None:
    """Make the metric names known to lm-eval, so it never looks them up on the hub (HF evaluate)."""
    import lm_eval.api.metrics  # noqa: F401  the built-ins first: the registry fills itself only while empty
    from lm_eval.api import registry

    for metric in ("rouge2", "rouge2_mecab"):
        if metric not in registry.metric_registry:
            registry.metric_registry.register(metric, target=_passthrough)
            registry.higher_is_better_registry.register(metric, target=True)
