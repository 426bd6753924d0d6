"""hf-fast end to end through lm-eval: the real JGLUE tasks on the fixture copy, stock `hf` vs `hf-fast`,
in process (simple_evaluate) and as a user types it (`jinstruct eval --model hf-fast`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jinstruct.scoring  # noqa: F401  (registers hf-fast)
from jinstruct.harness_tasks import tasks_dir

FIXTURE_JGLUE = Path(__file__).parent / "fixtures" / "JGLUE"
TASKS = ["jnli13_v03", "marcja_v02"]


def evaluate(backend: str, model_dir: Path, **model_args) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(tasks_dir() / "jglue"),
        include_defaults=False,
        metadata={"data_dir": str(FIXTURE_JGLUE)},
    )
    return simple_evaluate(
        model=backend,
        model_args={"pretrained": str(model_dir), "dtype": "float32", **model_args},
        tasks=TASKS,
        num_fewshot=3,
        task_manager=manager,
        device="cpu",
        batch_size=4,
        log_samples=True,
        bootstrap_iters=0,
    )


@pytest.fixture(scope="module")
def stock_run(tiny_llama):
    return evaluate("hf", tiny_llama)


def test_simple_evaluate_equals_stock(tiny_llama, stock_run):
    ours = evaluate("hf-fast", tiny_llama)
    for task in TASKS:
        stock_samples = sorted(stock_run["samples"][task], key=lambda s: s["doc_id"])
        fast_samples = sorted(ours["samples"][task], key=lambda s: s["doc_id"])
        assert len(fast_samples) == len(stock_samples) > 0
        for a, b in zip(stock_samples, fast_samples):
            assert a["arguments"] == b["arguments"]  # same prompts and choices
            lls_a = [float(r[0]) for r in a["filtered_resps"]]
            lls_b = [float(r[0]) for r in b["filtered_resps"]]
            assert max(abs(x - y) for x, y in zip(lls_a, lls_b)) <= 1e-4
            assert [r[1] for r in a["filtered_resps"]] == [r[1] for r in b["filtered_resps"]]
            assert lls_a.index(max(lls_a)) == lls_b.index(max(lls_b))
        for metric in ("acc,none", "acc_norm,none", "mcc,none"):
            assert ours["results"][task][metric] == stock_run["results"][task][metric]


def test_jinstruct_eval_cli_runs_hf_fast(tiny_lm, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable, "-m", "jinstruct", "eval",
        "--model", "hf-fast",
        "--model_args", f"pretrained={tiny_lm},dtype=float32,tokenization=reference",
        "--tasks", "jnli13_v03", "--num_fewshot", "2", "--limit", "4", "--device", "cpu",
        "--metadata", json.dumps({"data_dir": str(FIXTURE_JGLUE)}),
        "--output_path", str(tmp_path), "--log_samples",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    (results_file,) = tmp_path.glob("*/results_*.json")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    assert results["config"]["model"] == "hf-fast"
    assert results["config"]["model_args"]["tokenization"] == "reference"
    (samples_file,) = tmp_path.glob("*/samples_jnli13_v03_*.jsonl")
    assert len(samples_file.read_text(encoding="utf-8").splitlines()) == 4
    assert "hf-fast:" in proc.stderr + proc.stdout  # its padding/token report was logged
