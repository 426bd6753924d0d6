"""The `hf-fast` lm-eval model: each few-shot context runs once, numbers equal `--model hf`.

Importing this package registers the model with lm-eval (`jinstruct eval --model hf-fast ...`,
or `simple_evaluate(model="hf-fast", ...)` after `import jinstruct.scoring`).
"""

from .hf_fast import HFFastLM, ScoringStats
from .tokenization import TOKENIZATION_MODES, continuation_token_count, encode_pair

__all__ = ["HFFastLM", "ScoringStats", "TOKENIZATION_MODES", "continuation_token_count", "encode_pair"]
