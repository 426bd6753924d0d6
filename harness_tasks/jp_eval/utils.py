"""What the task YAMLs name with `!function utils.X`; the logic lives in importable modules."""

from jinstruct.harness_tasks.jp_eval.metrics import rouge2_mecab  # noqa: F401
from jinstruct.harness_tasks.jp_eval.task import TOKENIZERS, JPGenerationTask, make_rouge2_aggregation

rouge2 = make_rouge2_aggregation(TOKENIZERS)

__all__ = ["JPGenerationTask", "rouge2", "rouge2_mecab"]
