"""`jinstruct generate`: the paper's qualitative check, base and tuned models side by side.

Each prompt is formatted with the training template (`jinstruct.prompts.instruction_prompt`),
decoded greedily with the paper's repetition penalty (1.05 for CALM-based, i.e. GPT-NeoX, models;
1.0 for LLaMA-based ones), streamed to the terminal as it is produced, and written side by side to
a markdown file (plus a JSON lines file with the raw outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jinstruct.leaderboard.config import ConfigError, ModelSpec, load_models
from jinstruct.prompts import instruction_prompt

# The paper's five questions could not be sourced reliably; these five were written for the project.
DEFAULT_PROMPTS = [
    "日本で一番高い山は何ですか？",
    "東京でおすすめの観光地を教えてください。",
    "健康的な生活を送るためのコツを三つ挙げてください。",
    "人工知能とは何ですか？簡単に説明してください。",
    "桜の季節について短い文章を書いてください。",
]

# The paper: 1.05 for the CALM-based models (GPT-NeoX), 1.0 for the LLaMA-based ones.
PAPER_REPETITION_PENALTY = {"gpt_neox": 1.05, "llama": 1.0}


@dataclass
class Generation:
    model: str
    prompt: str
    output: str
    repetition_penalty: float
    new_tokens: int
    seconds: float


def repetition_penalty_for(model_type: str, override: float | None = None) -> float:
    if override is not None:
        return override
    return PAPER_REPETITION_PENALTY.get(model_type, 1.0)


def load_model(spec: ModelSpec):
    """(model, tokenizer) with the adapter applied; safetensors only, no remote code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, spec.dtype) if spec.dtype != "auto" else "auto"
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype, use_safetensors=True)
    if spec.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.adapter)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return model, tokenizer


def generate_one(
    model, tokenizer, prompt_text: str, *, max_new_tokens: int, repetition_penalty: float, stream: bool
) -> tuple[str, int]:
    import torch
    from transformers import TextStreamer

    # The tokenizer's own special tokens, as the trainer encodes (Gemma and Llama need their BOS).
    enc = tokenizer(prompt_text, return_tensors="pt")
    enc = {k: v.to(model.device) for k, v in enc.items()}
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if stream else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
            streamer=streamer,
        )
    new = out[0, enc["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), int(new.shape[0])


def run(
    specs: list[ModelSpec],
    prompts: list[str],
    *,
    max_new_tokens: int = 128,
    repetition_penalty: float | None = None,
    stream: bool = True,
) -> list[Generation]:
    results = []
    for spec in specs:
        model, tokenizer = load_model(spec)
        model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
        penalty = repetition_penalty_for(model_type, repetition_penalty)
        print(f"\n=== {spec.display} ({model_type or 'unknown architecture'}, repetition penalty {penalty}) ===")
        for prompt in prompts:
            text = instruction_prompt(prompt, None, spec.vqa_language)
            print(f"\n### {prompt}\n", flush=True)
            t0 = time.perf_counter()
            output, n = generate_one(
                model, tokenizer, text, max_new_tokens=max_new_tokens, repetition_penalty=penalty, stream=stream
            )
            if not stream:
                print(output)
            results.append(Generation(spec.display, prompt, output, penalty, n, time.perf_counter() - t0))
        del model
    return results


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>") or "(empty)"


def to_markdown(gens: list[Generation], note: str | None = None) -> str:
    models = list(dict.fromkeys(g.model for g in gens))
    prompts = list(dict.fromkeys(g.prompt for g in gens))
    by = {(g.model, g.prompt): g for g in gens}
    penalties = {m: next(g.repetition_penalty for g in gens if g.model == m) for m in models}
    lines = ["# Generations, side by side", ""]
    if note:
        lines += [f"> {line}" if line else ">" for line in note.splitlines()] + [""]
    lines += [
        "Greedy decoding; each prompt formatted with the training template (no input). Repetition penalty: "
        + ", ".join(f"{m} {p}" for m, p in penalties.items())
        + " (the paper: 1.05 for CALM-based, 1.0 for LLaMA-based models).",
        "",
        "| Prompt | " + " | ".join(_cell(m) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for p in prompts:
        lines.append(f"| {_cell(p)} | " + " | ".join(_cell(by[(m, p)].output) if (m, p) in by else "" for m in models) + " |")
    return "\n".join(lines) + "\n"


def write(gens: list[Generation], out: Path, note: str | None = None) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(gens, note), encoding="utf-8")
    jsonl = out.with_suffix(".jsonl")
    jsonl.write_text("".join(json.dumps(g.__dict__, ensure_ascii=False) + "\n" for g in gens), encoding="utf-8")
    return [out, jsonl]


def _read_prompts(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"prompts file {path} does not exist")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ConfigError(f"prompts file {path} has no prompts; write one prompt per line")
    return prompts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jinstruct generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, help="models YAML (the leaderboard's format); every model is run")
    p.add_argument("--model", help="a base model (hub id or folder), instead of --models")
    p.add_argument("--adapter", help="with --model: a LoRA adapter; the base is run too, for the comparison")
    p.add_argument("--language", choices=["ja", "en"], default="ja", help="template language with --model")
    p.add_argument("--prompts", type=Path, help="one prompt per line (default: five Japanese questions)")
    p.add_argument("--out", type=Path, default=Path("results/generations.md"))
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repetition-penalty", type=float, help="override the paper's per-architecture value")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-stream", action="store_true", help="print each answer when done instead of token by token")
    args = p.parse_args(argv)
    try:
        if args.models:
            specs = load_models(args.models).models
        elif args.model:
            base = ModelSpec(name="base", base_model=args.model, dtype=args.dtype, vqa_language=args.language)
            specs = [base]
            if args.adapter:
                specs.append(ModelSpec(name="tuned", base_model=args.model, adapter=args.adapter, dtype=args.dtype,
                                       vqa_language=args.language))
        else:
            p.print_usage(sys.stderr)
            print("jinstruct generate: give --models FILE or --model NAME", file=sys.stderr)
            return 2
        prompts = _read_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
    except ConfigError as err:
        print(f"jinstruct generate: {err}", file=sys.stderr)
        return 2
    gens = run(specs, prompts, max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
               stream=not args.no_stream)
    paths = write(gens, args.out)
    print("\nwrote: " + ", ".join(map(str, paths)))
    return 0
