"""Entry points for the vqa_ppl YAMLs (`!function utils.x`); the logic lives in jinstruct.harness_tasks.vqa."""

from jinstruct.harness_tasks.vqa.metrics import (  # noqa: F401
    bits_per_byte,
    counting,
    data,
    n_empty_answers,
    n_over_length,
    n_paper_inexact,
    n_skipped,
    n_truncated,
    ppl_char,
    ppl_paper,
    ppl_token,
    ppl_word,
)
from jinstruct.harness_tasks.vqa.task import VqaTask, doc_to_choice, doc_to_text  # noqa: F401
