"""Tiny offline models: a tokenizer trained in a second with `tokenizers` and a small causal LM built
from a config with a fixed seed. Used by the tests, the benchmarks and the offline demo; the hub is
never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 800):
    """A byte-level BPE tokenizer (so any Japanese text round-trips) as a PreTrainedTokenizerFast."""
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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )


def build_model(
    tokenizer,
    arch: str = "gpt_neox",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 2048,
    seed: int = 0,
):
    """A randomly initialised causal LM (GPT-NeoX or Llama) sized for the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    if arch == "gpt_neox":
        config = GPTNeoXConfig(**common, use_parallel_residual=True, rotary_pct=0.25)
    elif arch == "llama":
        config = LlamaConfig(**common, num_key_value_heads=num_heads)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; use 'gpt_neox' or 'llama'")
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def make_tiny_lm(
    out_dir: str | Path,
    texts: Iterable[str],
    arch: str = "gpt_neox",
    vocab_size: int = 800,
    seed: int = 0,
    **model_kwargs,
) -> Path:
    """Train a tokenizer on `texts`, build a model, save both (safetensors) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_model(tokenizer, arch=arch, seed=seed, **model_kwargs)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return out
