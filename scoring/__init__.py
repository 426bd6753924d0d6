"""The `hf-fast` lm-eval model: each few-shot context runs once, numbers equal `--model hf`.

lm-eval finds it by name once jinstruct is installed (`lm_eval --model hf-fast ...`,
`simple_evaluate(model="hf-fast", ...)`): the start-up hook registers it (`jinstruct.lm_eval_plugin`),
and importing this package registers it too.
"""

from .hf_fast import HFFastLM, ScoringStats
from .tokenization import TOKENIZATION_MODES, continuation_token_count, encode_pair

__all__ = ["HFFastLM", "ScoringStats", "TOKENIZATION_MODES", "continuation_token_count", "encode_pair"]
