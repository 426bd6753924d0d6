"""Time and peak memory of building vqa_ppl at full size (793,664 pairs, as ja-vg-vqa).

    python benchmarks/vqa_build.py --pairs 793664 --stage dataset
    python benchmarks/vqa_build.py --pairs 793664 --stage requests

Writes a synthetic `question_answers.json` of that many pairs (Visual Genome layout, 7 pairs per
image, questions and answers from the demo's phrase lists: jinstruct.demo_texts), then, in a fresh
subprocess so that the peak RSS is this stage's own, runs either the task's dataset construction
(`build_dataset`: read, tokenize, plan, write the docs) or all of lm-eval's request building on top
(`TaskManager` + `build_all_requests`, what `lm_eval --tasks vqa_ppl` does before scoring). The
tokenizer is a byte-level BPE trained on the demo corpus (like the tests' tiny models).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_pairs(path: Path, n: int, per_image: int = 7, seed: int = 0) -> None:
    from jinstruct.demo_texts import _scene_qa

    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write("[")
        for start in range(0, n, per_image):
            image_id = start // per_image
            qas = []
            for k in range(start, min(n, start + per_image)):
                q, a = _scene_qa(rnd)
                qas.append({"qa_id": k, "image_id": image_id, "question": q, "answer": a})
            f.write(("," if start else "") + json.dumps({"id": image_id, "qas": qas}, ensure_ascii=False))
        f.write("]")


def tokenizer_dir(out: Path) -> Path:
    from jinstruct.demo_texts import DATA_DIR
    from jinstruct.tiny import build_model, train_tokenizer

    texts = (DATA_DIR / "corpus.txt").read_text(encoding="utf-8").splitlines()
    tok = train_tokenizer(texts, vocab_size=2000)
    tok.save_pretrained(out)
    build_model(tok, hidden_size=32, num_layers=1, num_heads=2).config.save_pretrained(out)
    return out


def stage(kind: str, qa_path: str, tok_path: str) -> dict:
    start = time.perf_counter()
    if kind == "dataset":
        from jinstruct.harness_tasks.vqa.task import build_dataset

        ds = build_dataset("ja", vqa_path=qa_path, pretrained=tok_path)[0]["test"]
        n = len(ds)
    else:
        from lm_eval.tasks import TaskManager

        from jinstruct.harness_tasks import tasks_dir

        meta = {"vqa_path": qa_path, "pretrained": tok_path}
        manager = TaskManager(include_path=str(tasks_dir() / "vqa"), include_defaults=False, metadata=meta)
        task = manager.load(["vqa_ppl"])["tasks"]["vqa_ppl"]
        task.build_all_requests(rank=0, world_size=1)
        n = len(task.instances)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "stage": kind,
        "items": n,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=793_664)
    p.add_argument("--stage", choices=("dataset", "requests"), default="dataset")
    p.add_argument("--work-dir", type=Path, default=None, help="keep the synthetic file here")
    p.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(stage(*args._child)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        qa = work / f"question_answers-{args.pairs}.json"
        if not qa.exists():
            write_pairs(qa, args.pairs)
        tok = work / "tokenizer"
        if not (tok / "config.json").exists():
            tokenizer_dir(tok)
        print(f"{args.pairs:,} pairs, {qa.stat().st_size / 1e6:.0f} MB of JSON; stage {args.stage}")
        # A fresh process per measurement: ru_maxrss is the stage's own peak, HF's dataset cache is
        # pointed at a fresh folder so that nothing is reused from an earlier run.
        env = {**__import__("os").environ, "HF_DATASETS_CACHE": str(work / "hf-cache" / str(time.time()))}
        out = subprocess.run(
            [sys.executable, __file__, "--_child", args.stage, str(qa), str(tok)],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.stderr.write(out.stderr[-4000:])
            return out.returncode
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{result['stage']}: {result['items']:,} items in {result['seconds']} s "
            f"({result['cpu_seconds']} s CPU, the whole process), peak RSS {result['peak_rss_mb']:,} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
