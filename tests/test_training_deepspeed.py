"""Real DeepSpeed runs on CPU (gloo): ZeRO-2 and ZeRO-3 in-process, one process (the Python API's
path), and ZeRO-2 with two processes through `accelerate launch` with the shipped config. With the loss normalised over the whole step, the
adapter must not depend on DeepSpeed or on the number of processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "training" / "samples" / "ja_instructions.jsonl"
# LoRA dropout 0: dropout masks come from per-process RNG streams, which differ between 1 and 2 processes.
FLAGS = [
    "--val-size",
    "8",
    "--global-batch-size",
    "8",
    "--micro-batch-size",
    "2",
    "--epochs",
    "1",
    "--seq-len",
    "256",
    "--lr",
    "2e-3",
    "--warmup-steps",
    "1",
    "--eval-every",
    "2",
    "--save-every",
    "2",
    "--lora-dropout",
    "0",
    "--no-progress",
]

IN_PROCESS = """
import json, sys
from jinstruct.training.config import config_from_args
from jinstruct.training.train import train
model, data, out = sys.argv[1:4]
flags = ["--model", model, "--data", data] + sys.argv[4:]
runs = (("zero2", ["--deepspeed", "zero2"]), ("plain", []), ("zero2-again", ["--deepspeed", "zero2"]),
        ("zero3", ["--deepspeed", "zero3"]))
for name, extra in runs:
    train(config_from_args(flags + ["--output", f"{out}/{name}"] + extra))
# stopped after step 2 (a checkpoint), then resumed from DeepSpeed's own checkpoint files
for extra in (["--stop-at-step", "2"], ["--resume"]):
    train(config_from_args(flags + ["--output", f"{out}/zero2-resumed", "--deepspeed", "zero2"] + extra))
"""


def run(cmd: list[str], timeout: int = 400) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_DEEPSPEED"):
        env.pop(key, None)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_zero2_one_and_two_processes_match_plain(tiny_lm, tmp_path):
    run([sys.executable, "-c", IN_PROCESS, str(tiny_lm), str(SAMPLE), str(tmp_path)] + FLAGS)
    plain = weights(tmp_path / "plain")
    for name, stage in (("zero2", 2), ("zero2-again", 2), ("zero3", 3)):  # several runs in one process
        ds = weights(tmp_path / name)
        for key in plain:
            torch.testing.assert_close(ds[key], plain[key], atol=1e-6, rtol=1e-5)
        run_info = json.loads((tmp_path / name / "training_config.json").read_text())["run"]
        assert run_info["deepspeed"]["zero_optimization"]["stage"] == stage and run_info["world_size"] == 1

    resumed, uninterrupted = weights(tmp_path / "zero2-resumed"), weights(tmp_path / "zero2")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)

    run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            "training/configs/accelerate_zero2.yaml",
            "--num_processes",
            "2",
            "-m",
            "jinstruct.training.train",
            "--model",
            str(tiny_lm),
            "--data",
            str(SAMPLE),
            "--output",
            str(tmp_path / "two"),
            *FLAGS,
        ]
    )
    two = weights(tmp_path / "two")
    for key in plain:
        torch.testing.assert_close(two[key], plain[key], atol=1e-5, rtol=1e-4)
    run_info = json.loads((tmp_path / "two" / "training_config.json").read_text())["run"]
    assert run_info["world_size"] == 2 and run_info["examples_seen"] == 32
    # both processes wrote their RNG state into the same atomic checkpoint
    assert sorted(
        p.name for p in (tmp_path / "two" / "checkpoints" / "step-000004").glob("rng_*.safetensors")
    ) == ["rng_0.safetensors", "rng_1.safetensors"]
    # the plain run and the 2-process run agree on the logged losses too
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
        for n in ("plain", "two")
    ]
    assert all(abs(a - b) < 1e-5 for a, b in zip(*losses))
