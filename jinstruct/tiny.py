"""Tiny offline models: a tokenizer trained in a second with `tokenizers` and a small causal LM built
from a config with a fixed seed. Used by the tests, the benchmarks and the offline demo; the hub is
never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 800, added_tokens: Sequence[str] = ()):
    """A byte-level BPE tokenizer (so any Japanese text round-trips) as a PreTrainedTokenizerFast.
    `added_tokens` become whole tokens wherever they occur (as a real vocabulary's label words may)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.add_tokens(list(added_tokens))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )


def _dims(h: int, layers: int, heads: int, positions: int) -> dict:
    """The common config fields under their usual names (most configs)."""
    return dict(
        hidden_size=h,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=h * 4,
        max_position_embeddings=positions,
    )


def _gpt2_dims(h: int, layers: int, heads: int, positions: int) -> dict:
    return dict(n_embd=h, n_layer=layers, n_head=heads, n_inner=h * 4, n_positions=positions)


# model_type -> config fields for a tiny random model of that architecture. The sliding windows are
# small on purpose, so that few-shot prompts exceed them and the window handling is exercised.
def _arch_fields(arch: str, h: int, layers: int, heads: int, positions: int) -> dict:
    d = _dims(h, layers, heads, positions)
    kv = max(1, heads // 2)  # grouped-query attention where the architecture has it
    table = {
        "gpt_neox": {**d, "use_parallel_residual": True, "rotary_pct": 0.25},
        "llama": {**d, "num_key_value_heads": heads},
        "mistral": {**d, "num_key_value_heads": kv, "sliding_window": 48},
        "qwen2": {**d, "num_key_value_heads": kv},
        "qwen3": {**d, "num_key_value_heads": kv, "head_dim": h // heads},
        "gemma2": {
            **d,
            "num_key_value_heads": kv,
            "head_dim": h // heads,
            "sliding_window": 32,
            "query_pre_attn_scalar": h // heads,
        },
        "gemma3_text": {
            **d,
            "num_key_value_heads": kv,
            "head_dim": h // heads,
            "sliding_window": 32,
            "query_pre_attn_scalar": h // heads,
            "layer_types": ["sliding_attention", "full_attention"] * (layers // 2)
            + ["sliding_attention"] * (layers % 2),
        },
        "phi3": {**d, "num_key_value_heads": heads, "sliding_window": None},
        "gpt2": _gpt2_dims(h, layers, heads, positions),
        "opt": {
            "hidden_size": h,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "ffn_dim": h * 4,
            "max_position_embeddings": positions,
            "word_embed_proj_dim": h,
        },
        "bloom": {"hidden_size": h, "n_layer": layers, "n_head": heads},
        "falcon": {
            "hidden_size": h,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "max_position_embeddings": positions,
            "new_decoder_architecture": False,
            "multi_query": True,
            "parallel_attn": True,
            "bias": False,
        },
        "stablelm": {**d, "num_key_value_heads": heads, "partial_rotary_factor": 0.25},
        "gptj": {**_gpt2_dims(h, layers, heads, positions), "rotary_dim": (h // heads) // 2},
        "mixtral": {**d, "num_key_value_heads": kv, "num_local_experts": 4, "num_experts_per_tok": 2},
        "qwen2_moe": {
            **d,
            "num_key_value_heads": kv,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": h * 2,
            "shared_expert_intermediate_size": h * 2,
        },
        "mamba": {"hidden_size": h, "num_hidden_layers": layers, "state_size": 8, "expand": 2},
    }
    if arch not in table:
        raise ValueError(f"unknown tiny architecture {arch!r}; use one of {', '.join(sorted(table))}")
    return table[arch]


TINY_ARCHITECTURES = (
    "gpt_neox",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "phi3",
    "gpt2",
    "opt",
    "bloom",
    "falcon",
    "stablelm",
    "gptj",
    "mixtral",
    "qwen2_moe",
    "mamba",
)


def build_model(
    tokenizer,
    arch: str = "gpt_neox",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 2048,
    seed: int = 0,
    **config_overrides,
):
    """A randomly initialised causal LM of architecture `arch` (a model_type of TINY_ARCHITECTURES);
    `config_overrides` replace or add config fields (a smaller sliding window, other layer types)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {**_arch_fields(arch, hidden_size, num_layers, num_heads, max_positions), **config_overrides}
    config = AutoConfig.for_model(
        arch,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **fields,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def make_tiny_lm(
    out_dir: str | Path,
    texts: Iterable[str],
    arch: str = "gpt_neox",
    vocab_size: int = 800,
    seed: int = 0,
    added_tokens: Sequence[str] = (),
    **model_kwargs,
) -> Path:
    """Train a tokenizer on `texts`, build a model, save both (safetensors) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, added_tokens=added_tokens)
    model = build_model(tokenizer, arch=arch, seed=seed, **model_kwargs)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return out
