"""GPU readiness in one command: the scoring and training benchmarks on one CUDA GPU, within ~8 minutes.

    python benchmarks/gpu_check.py                  # writes results/gpu_check/{scoring,training,summary}.json

1. Scoring: a ~1B-parameter Llama-shaped model with random weights (hidden 2048, 16 layers, 32k vocabulary,
   bf16), built here with a fixed seed, on the bundled JNLI sample (jnli13_v03, 3-shot): stock lm-eval `hf`
   vs `hf-fast`, same predictions checked by benchmarks/scoring.py, which also prints the speed ratio.
2. Training: benchmarks/training.py --device cuda: the paper's recipe (HF Trainer, fp16 autocast over the
   fp32-cast model, left padding) against ours (bf16, packed rows), tokens/s, validation loss and peak
   GPU memory of each.
Each step runs in its own process under a time limit; the summary records what finished, its exit code and
wall time (limits: 200 s each, so with the model build the whole check stays under 8 minutes). Nothing here
runs without a GPU (it stops with a message).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JGLUE = REPO / "jinstruct" / "demo_data" / "JGLUE"
CACHE = Path.home() / ".cache" / "jinstruct-bench"


def build_llama_1b(out: Path) -> Path:
    """Random Llama-shaped ~1.1B model (bf16 safetensors) with a byte-level BPE tokenizer of the JGLUE sample."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from jinstruct.demo import tokenizer_texts
    from jinstruct.tiny import train_tokenizer

    tok = train_tokenizer(tokenizer_texts(), vocab_size=4000)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    print(f"random Llama: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters", flush=True)
    partial = out.with_name(out.name + ".partial")
    tok.save_pretrained(partial)
    model.save_pretrained(partial, safe_serialization=True)
    partial.rename(out)
    return out


def step(name: str, cmd: list[str], limit_s: int, summary: dict) -> None:
    print(f"\n==> {name}: {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    try:
        code = subprocess.run(cmd, cwd=REPO, timeout=limit_s).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    summary[name] = {"exit": code, "wall_s": round(time.perf_counter() - t, 1), "limit_s": limit_s}
    print(f"==> {name}: exit {code}, {summary[name]['wall_s']} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check")
    p.add_argument("--limit", type=int, default=40, help="JNLI docs to score (the bundled sample has 40)")
    p.add_argument("--train-rows", type=int, default=1024)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; this check needs one", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    t_all = time.perf_counter()
    model = build_llama_1b(CACHE / "llama-1b-random-bf16")
    summary["build_s"] = round(time.perf_counter() - t_all, 1)
    py = sys.executable
    step(
        "scoring",
        [
            py,
            "benchmarks/scoring.py",
            "--model",
            str(model),
            "--dtype",
            "bfloat16",
            "--device",
            "cuda",
            "--task",
            "jnli13_v03",
            "--num-fewshot",
            "3",
            "--limit",
            str(args.limit),
            "--data-dir",
            str(JGLUE),
            "--stock-batch-sizes",
            "8,32",
            "--fast-batch-sizes",
            "8,32",
            "--json",
            str(args.out / "scoring.json"),
        ],
        200,
        summary,
    )
    step(
        "training",
        [
            py,
            "benchmarks/training.py",
            "--device",
            "cuda",
            "--repeats",
            "1",
            "--train-rows",
            str(args.train_rows),
            "--json",
            str(args.out / "training.json"),
        ],
        200,
        summary,
    )
    summary["total_s"] = round(time.perf_counter() - t_all, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0 if all(summary[s]["exit"] == 0 for s in ("scoring", "training")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
