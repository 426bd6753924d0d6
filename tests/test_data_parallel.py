"""Data-parallel evaluation on CPU: two `accelerate launch` processes (gloo) give one process's results.

`accelerate launch --multi_gpu --num_processes 2 -m jinstruct eval --model hf-fast ...` with `--limit`, the
few-shot replay of the stratified JNLI 1.3 draw, MARC-ja and vqa_ppl: the results JSON equals the
one-process run's, and every logged sample is the same document with the same prompt and choices;
log-likelihoods, and the perplexities summed from them, agree to float rounding (each process batches a
different set of documents); accuracies and every other figure are identical.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TASKS = ["jnli13_v03", "marcja_v02", "vqa_ppl"]
# vqa_ppl figures are sums of log-likelihoods; the JGLUE ones count argmaxes and compare exactly.
FROM_LOGLIKELIHOODS = {"ppl_paper", "ppl_token", "ppl_char", "bits_per_byte", "ppl_word"}
pytestmark = pytest.mark.slow


def _eval_args(model: Path, out: Path) -> list[str]:
    metadata = {
        "data_dir": str(FIXTURES / "JGLUE"),
        "vqa_path": str(FIXTURES / "vqa" / "question_answers.json"),
    }
    return [
        "-m",
        "jinstruct",
        "eval",
        "--model",
        "hf-fast",
        "--model_args",
        f"pretrained={model},dtype=float32",
        "--tasks",
        ",".join(TASKS),
        "--num_fewshot",
        "2",
        "--limit",
        "7",
        "--batch_size",
        "3",
        "--metadata",
        json.dumps(metadata),
        "--log_samples",
        "--output_path",
        str(out),
    ]


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _load(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    (results_file,) = out.rglob("results_*.json")
    samples = {
        t: [json.loads(line) for line in next(out.rglob(f"samples_{t}_*.jsonl")).read_text().splitlines()]
        for t in TASKS
    }
    return json.loads(results_file.read_text()), samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory):
    work = tmp_path_factory.mktemp("dp")
    one, two = work / "one", work / "two"
    _run([sys.executable, *_eval_args(tiny_llama, one)], work)
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
    ]
    log = _run([*launch, *_eval_args(tiny_llama, two)], work)
    return _load(one), _load(two), log


def test_two_processes_split_the_documents(runs):
    *_, log = runs
    assert "data-parallel on CPU, process 0 of 2" in log and "data-parallel on CPU, process 1 of 2" in log


def _no_addresses(value) -> str:
    """lm-eval logs functions of the task config with their memory address, which differs per process."""
    return re.sub(r" at 0x[0-9a-f]+", "", json.dumps(value, sort_keys=True))


def test_results_equal_one_process(runs):
    (res_one, _), (res_two, _), _ = runs
    for key in ("n-samples", "configs", "n-shot"):
        assert _no_addresses(res_two[key]) == _no_addresses(res_one[key]), key
    assert res_two["results"].keys() == res_one["results"].keys()
    for task, metrics in res_one["results"].items():
        assert metrics.keys() == res_two["results"][task].keys()
        for name, value in metrics.items():
            if isinstance(value, float) and name.split(",")[0] in FROM_LOGLIKELIHOODS:  # float rounding
                assert res_two["results"][task][name] == pytest.approx(value, rel=1e-6), (task, name)
            else:  # accuracies, F1, counts, the counting/data notes: exactly
                assert res_two["results"][task][name] == value, (task, name)


def _close(a, b) -> bool:
    """Equal, except floats (also lm-eval's stringified log-likelihoods) to float rounding."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if isinstance(a, bool) or a in ("True", "False"):
        return a == b
    return x == pytest.approx(y, rel=1e-6, abs=1e-5)


def test_logged_samples_equal_one_process(runs):
    (_, samples_one), (_, samples_two), _ = runs
    for task in TASKS:
        one = sorted(samples_one[task], key=lambda s: s["doc_id"])
        two = sorted(samples_two[task], key=lambda s: s["doc_id"])
        assert [s["doc_id"] for s in one] == [s["doc_id"] for s in two] == list(range(7))
        for a, b in zip(one, two):
            assert a["arguments"] == b["arguments"]  # same few-shot prompt and choices
            assert a["doc"] == b["doc"] and a["target"] == b["target"]
            # `resps` is left out: lm-eval pads the rank with fewer requests by repeating its last request
            # and appends those answers to that document's raw `resps` (stock lm-eval on GPUs does too);
            # `filtered_resps`, which the metrics read, holds the one answer per request.
            for key in a.keys() - {"resps", "doc_hash", "prompt_hash", "target_hash"}:
                assert _close(a[key], b[key]), (task, a["doc_id"], key, a[key], b[key])
            assert a["doc_hash"] == b["doc_hash"] and a["prompt_hash"] == b["prompt_hash"]
