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

# The five inputs of the paper's qualitative comparison (section V-B). The paper prints them in English
# only; the Japanese are plain renderings of ours, not the authors' originals (docs/reference-behaviour.md).
PAPER_PROMPTS = {
    "あなたは誰ですか？": "Who are you?",
    "東京から大阪への行き方を教えてください。": "Please tell me how to get to Osaka from Tokyo.",
    "東京大学はどこにありますか？": "Where is the University of Tokyo?",
    "電話が鳴っています。どうすればいいですか？": "The phone is ringing. What should I do?",
    "京都の三大祭りは何ですか？": "What are the three major festivals in Kyoto?",
}
DEFAULT_PROMPTS = list(PAPER_PROMPTS)

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
    new = out[0, enc["input_ids"].shape[1] :]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), int(new.shape[0])


def run(
    specs: list[ModelSpec],
    prompts: list[str],
    *,
    max_new_tokens: int = 128,
    repetition_penalty: float | None = None,
    stream: bool = True,
    into: list[Generation] | None = None,
) -> list[Generation]:
    """Generations of every spec for every prompt; each is appended to `into` (if given) as it is made."""
    results = [] if into is None else into
    for spec in specs:
        model, tokenizer = load_model(spec)
        model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
        penalty = repetition_penalty_for(model_type, repetition_penalty)
        print(
            f"\n=== {spec.display} ({model_type or 'unknown architecture'}, repetition penalty {penalty}) ==="
        )
        for prompt in prompts:
            text = instruction_prompt(prompt, None, spec.vqa_language)
            print(f"\n### {prompt}\n", flush=True)
            t0 = time.perf_counter()
            output, n = generate_one(
                model,
                tokenizer,
                text,
                max_new_tokens=max_new_tokens,
                repetition_penalty=penalty,
                stream=stream,
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
    english = any(p in PAPER_PROMPTS for p in prompts)  # the paper's inputs: its English text beside ours
    lines += [
        "Greedy decoding; each prompt formatted with the training template (no input). Repetition penalty: "
        + ", ".join(f"{m} {p}" for m, p in penalties.items())
        + " (the paper: 1.05 for CALM-based, 1.0 for LLaMA-based models).",
        "",
    ]
    if english:
        lines += [
            "The paper's five inputs are printed there in English only; the Japanese prompts are our renderings.",
            "",
        ]
    head = ["Prompt"] + (["The paper's input (English)"] if english else []) + [_cell(m) for m in models]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in prompts:
        cells = [_cell(p)] + ([_cell(PAPER_PROMPTS.get(p, ""))] if english else [])
        cells += [_cell(by[(m, p)].output) if (m, p) in by else "" for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def output_paths(out: Path) -> tuple[Path, Path]:
    """(markdown, JSON lines): `--out g.md` or `--out g.jsonl` both give g.md and g.jsonl."""
    if out.suffix.lower() == ".jsonl":
        return out.with_suffix(".md"), out
    return out, out.with_suffix(".jsonl")


def write(gens: list[Generation], out: Path, note: str | None = None) -> list[Path]:
    md, jsonl = output_paths(out)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(to_markdown(gens, note), encoding="utf-8")
    jsonl.write_text(
        "".join(json.dumps(g.__dict__, ensure_ascii=False) + "\n" for g in gens), encoding="utf-8"
    )
    return [md, jsonl]


def _on_hub(repo: str, filename: str) -> bool | None:
    """Whether a hub repository has the file (the local cache first); None when the hub cannot be asked."""
    from huggingface_hub import file_exists, try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(repo, filename), str):
            return True
        return file_exists(repo, filename)
    except Exception:  # offline, unreachable, or not a valid repository id
        return None


def check_paths(specs: list[ModelSpec], out: Path) -> None:
    """Every model, adapter and output path a run needs, checked before any model is loaded."""
    for spec in specs:
        for what, value, needed in (
            ("base model", spec.base_model, "config.json"),
            ("adapter", spec.adapter, "adapter_config.json"),
        ):
            if not value:
                continue
            path = Path(value).expanduser()
            if path.exists():
                if not (path / needed).is_file():
                    raise ConfigError(f"{spec.display}: {what} {value} has no {needed}")
            elif value.startswith((".", "/", "~")) or not _on_hub(value, needed):
                raise ConfigError(
                    f"{spec.display}: {what} {value} is not a local folder, nor a Hugging Face hub "
                    f"repository with {needed} that can be reached"
                )
    for path in output_paths(out):
        if path.is_dir():
            raise ConfigError(
                f"--out {out}: {path} is a folder; give a file name such as results/generations.md"
            )
        parent = next((p for p in path.parents if p.exists()), Path("."))
        if not parent.is_dir():
            raise ConfigError(f"--out {out}: {parent} is a file, not a folder")


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
    p.add_argument(
        "--prompts", type=Path, help="one prompt per line (default: the paper's five inputs, in Japanese)"
    )
    p.add_argument("--out", type=Path, default=Path("results/generations.md"))
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repetition-penalty", type=float, help="override the paper's per-architecture value")
    p.add_argument("--dtype", default="float32")
    p.add_argument(
        "--no-stream", action="store_true", help="print each answer when done instead of token by token"
    )
    args = p.parse_args(argv)
    try:
        if args.models:
            specs = load_models(args.models).models
        elif args.model:
            base = ModelSpec(name="base", base_model=args.model, dtype=args.dtype, vqa_language=args.language)
            specs = [base]
            if args.adapter:
                specs.append(
                    ModelSpec(
                        name="tuned",
                        base_model=args.model,
                        adapter=args.adapter,
                        dtype=args.dtype,
                        vqa_language=args.language,
                    )
                )
        else:
            p.print_usage(sys.stderr)
            print("jinstruct generate: give --models FILE or --model NAME", file=sys.stderr)
            return 2
        prompts = _read_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
    except ConfigError as err:
        print(f"jinstruct generate: {err}", file=sys.stderr)
        return 2
    try:
        check_paths(specs, args.out)
    except ConfigError as err:
        print(f"jinstruct generate: {err}", file=sys.stderr)
        return 2
    gens: list[Generation] = []
    try:
        run(
            specs,
            prompts,
            max_new_tokens=args.max_new_tokens,
            repetition_penalty=args.repetition_penalty,
            stream=not args.no_stream,
            into=gens,
        )
    except (Exception, KeyboardInterrupt) as err:  # keep what was generated before the failure
        if not gens:
            raise
        paths = write(gens, args.out, note=f"Incomplete: stopped by {type(err).__name__}: {err}")
        print(
            f"\njinstruct generate: stopped ({type(err).__name__}: {err}); kept the {len(gens)} generations "
            f"made before it: {', '.join(map(str, paths))}",
            file=sys.stderr,
        )
        return 1
    paths = write(gens, args.out)
    print("\nwrote: " + ", ".join(map(str, paths)))
    return 0
