"""Real command-line runs, as a user types them: stock `lm_eval` and `jinstruct eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference_jglue import TASKS, reference_contexts
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef
from test_jglue_tasks import FIXTURE_JGLUE, read_rows

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **env}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def tasks_dir_from_cli() -> str:
    out = run([sys.executable, "-m", "jinstruct", "tasks-dir"]).stdout.strip().splitlines()[-1]
    assert (Path(out) / "jglue" / "jnli13_v03.yaml").is_file()
    return out


def read_output(out_dir: Path, task: str) -> tuple[dict, list[dict]]:
    (results_path,) = out_dir.glob("*/results_*.json")
    (samples_path,) = out_dir.glob(f"*/samples_{task}_*.jsonl")
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    return json.loads(results_path.read_text(encoding="utf-8")), sorted(samples, key=lambda s: s["doc_id"])


def check_task_output(results: dict, samples: list[dict], task: str, shots: int, limit: int) -> None:
    family = TASKS[task][0]
    train, valid = read_rows(FIXTURE_JGLUE, family)
    expected = reference_contexts(task, train, valid, shots)
    labels = TASKS[task][2]
    assert [s["doc_id"] for s in samples] == list(range(limit))  # first N docs in dataset order
    gold, pred, pred_norm = [], [], []
    for s in samples:
        args = [s["arguments"][f"gen_args_{i}"] for i in range(len(labels))]
        assert [a["arg_0"] for a in args] == [expected[s["doc_id"]]] * len(labels)  # full-run prompt
        assert [a["arg_1"] for a in args] == labels  # bare label word, empty delimiter
        lls = np.array([float(r[0][0]) for r in s["resps"]])
        gold.append(s["doc"]["label"])
        pred.append(int(np.argmax(lls)))
        pred_norm.append(int(np.argmax(lls / np.array([len(w) for w in labels]))))
    got = results["results"][task]
    assert got["acc,none"] == pytest.approx(np.mean(np.array(pred) == gold))
    assert got["acc_norm,none"] == pytest.approx(np.mean(np.array(pred_norm) == gold))
    assert got["balanced_acc,none"] == pytest.approx(balanced_accuracy_score(gold, pred))
    assert got["macro_f1,none"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert got["mcc,none"] == pytest.approx(matthews_corrcoef(gold, pred))
    assert results["configs"][task]["metadata"]["data"]["source"].startswith("local JGLUE copy")


def test_stock_lm_eval_cli(tiny_lm, tmp_path):
    out = tmp_path / "out"
    run(
        [
            str(BIN / "lm_eval"),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_lm},dtype=float32",
            "--include_path",
            tasks_dir_from_cli(),
            "--tasks",
            "jnli13_v03,marcja_v02",
            "--num_fewshot",
            "2",
            "--limit",
            "6",
            "--metadata",
            json.dumps({"data_dir": str(FIXTURE_JGLUE)}),
            "--log_samples",
            "--output_path",
            str(out),
        ]
    )
    for task in ("jnli13_v03", "marcja_v02"):
        results, samples = read_output(out, task)
        check_task_output(results, samples, task, shots=2, limit=6)


def test_jinstruct_eval_with_env_data_dir(tiny_lm, tmp_path):
    out = tmp_path / "out"
    run(
        [
            str(BIN / "jinstruct"),
            "eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_lm},dtype=float32",
            "--tasks",
            "jnli_v02",
            "--num_fewshot",
            "3",
            "--limit",
            "4",
            "--log_samples",
            "--output_path",
            str(out),
        ],
        JGLUE_DIR=str(FIXTURE_JGLUE),
    )
    results, samples = read_output(out, "jnli_v02")
    check_task_output(results, samples, "jnli_v02", shots=3, limit=4)
    assert (
        results["configs"]["jnli_v02"]["metadata"]["data"]["source"]
        == "local JGLUE copy (environment JGLUE_DIR)"
    )
