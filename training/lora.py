"""LoRA on a causal LM: which modules by architecture, and the PEFT wrapping."""

from __future__ import annotations

# The paper's choices (Table I) for GPT-NeoX and LLaMA; for the other architectures Japanese models use,
# the same idea (the attention's query and value projections, or the fused QKV projection where the
# architecture has one). Every row is trained and reloaded by tests/test_architectures.py. Architectures
# not listed fall back to PEFT's own table (see default_target_modules).
ARCH_TARGETS: dict[str, list[str]] = {
    "gpt_neox": ["query_key_value"],  # the paper (OpenCALM, rinna)
    "llama": ["q_proj", "v_proj"],  # the paper (LLaMA, Swallow, ELYZA)
    "mistral": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen2_moe": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"],
    "gemma3": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],  # fused query/key/value
    "stablelm": ["q_proj", "v_proj"],
    "gptj": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],  # fused query/key/value (a Conv1D)
    "bloom": ["query_key_value"],
    "falcon": ["query_key_value"],
    "mamba": ["in_proj", "x_proj"],  # no attention: the mixer's input and state projections
}


def default_target_modules(model_type: str) -> list[str]:
    if model_type in ARCH_TARGETS:
        return list(ARCH_TARGETS[model_type])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults

    if model_type in peft_defaults:
        return list(peft_defaults[model_type])
    raise ValueError(
        f"no default LoRA target modules for architecture {model_type!r}; "
        "pass --lora-target-modules NAME[,NAME...] (the attention projection layers' names)"
    )


def check_targets(model, targets: list[str]) -> None:
    """Every target name must match a module (PEFT would silently skip a misspelt one among good ones)."""
    names = [name for name, _ in model.named_modules() if name]
    leaves = {name.rsplit(".", 1)[-1] for name in names}
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        from jinstruct.names import did_you_mean

        hints = "; ".join(f"{t!r}{did_you_mean(t, leaves)}" for t in missing)
        raise ValueError(
            f"--lora-target-modules: no module of this {model.config.model_type} model is named {hints}; "
            f"module names here: {', '.join(sorted(leaves))}"
        )


def add_lora(model, config):
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules or default_target_modules(model.config.model_type)
    check_targets(model, targets)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora), targets
