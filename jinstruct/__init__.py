"""jinstruct: LoRA instruction tuning and paper-exact Japanese evaluation for lm-evaluation-harness."""

__version__ = "0.1.0"
