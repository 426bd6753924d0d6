"""End-to-end runs on the tiny model: adapter output, exact kill-and-resume, NaN stop, lm_eval loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jinstruct.training.config import TrainConfig
from jinstruct.training.metrics import read_metrics
from jinstruct.training.train import NonFiniteLossError, main, train

SAMPLE = Path(__file__).resolve().parents[1] / "training" / "samples" / "ja_instructions.jsonl"


def small_config(model: Path, output: Path, **overrides) -> TrainConfig:
    """40 sample rows: 32 train / 8 validation, 4 steps per epoch, 2 epochs."""
    fields = dict(
        model=str(model),
        data=str(SAMPLE),
        output=str(output),
        seq_len=256,
        val_size=8,
        global_batch_size=8,
        micro_batch_size=2,
        epochs=2,
        lr=2e-3,
        warmup_steps=2,
        eval_every=3,
        save_every=3,
        keep_checkpoints=2,
        progress=False,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.fixture(scope="module")
def finished_run(tiny_lm, tmp_path_factory) -> Path:
    return train(small_config(tiny_lm, tmp_path_factory.mktemp("run") / "out"))


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_output_is_a_peft_adapter_with_resolved_config(finished_run):
    assert (finished_run / "adapter_config.json").is_file()
    weights = adapter(finished_run)
    assert weights and all("lora_" in k for k in weights)
    config = json.loads((finished_run / "training_config.json").read_text(encoding="utf-8"))
    assert config["seq_len"] == 256 and config["loss_on"] == "response"
    assert config["run"]["steps"] == 8 and config["run"]["examples_seen"] == 64
    assert config["run"]["lora_target_modules"] == ["query_key_value"]
    assert 0 <= config["run"]["padded_fraction"] < 0.2
    records = read_metrics(finished_run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 9))
    assert {"loss", "lr", "tokens_per_s", "padded_fraction"} <= set(records[0])
    assert [r["step"] for r in records if "val_loss" in r] == [3, 6, 8]
    assert records[-1]["lr"] == 0.0  # linear decay to 0
    assert records[-1]["val_loss"] < records[0]["loss"]  # it learned something
    kept = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    assert kept == ["step-000006", "step-000008"]  # keep the last K


def test_kill_and_resume_is_bit_identical(finished_run, tiny_lm, tmp_path):
    out = tmp_path / "out"
    train(small_config(tiny_lm, out, stop_at_step=5))  # ends after step 5 as if killed there
    assert not (out / "adapter_model.safetensors").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000003", "step-000005"]
    # a save interrupted half-way leaves only a temp folder, which is ignored and removed
    partial = out / "checkpoints" / ".tmp-step-000006"
    partial.mkdir()
    (partial / "state.pt").write_bytes(b"truncated")
    with (out / "metrics.jsonl").open("a") as f:  # lines logged after the checkpoint by the killed run
        f.write(json.dumps({"step": 6, "loss": 123.0}) + "\n")
    train(small_config(tiny_lm, out, resume=True, stop_at_step=5))  # the same command + --resume runs on
    assert not partial.exists()
    ours, reference = adapter(out), adapter(finished_run)
    assert ours.keys() == reference.keys()
    for name in ours:
        assert torch.equal(ours[name], reference[name]), name
    losses = [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl")]
    assert losses == [(r["step"], r["loss"]) for r in read_metrics(finished_run / "metrics.jsonl")]


def test_resume_refuses_a_different_run(finished_run, tiny_lm, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished_run / "checkpoints", out / "checkpoints")
    with pytest.raises(ValueError, match=r"cannot resume .* lr: 0.002 -> 0.001"):
        train(small_config(tiny_lm, out, resume=True, lr=1e-3))


def test_nan_loss_stops_with_step(tiny_lm, tmp_path, capsys):
    config = small_config(tiny_lm, tmp_path / "out", lr=1e30, warmup_steps=0, max_steps=4, val_size=0)
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf|-inf) at step 2 "):
        train(config)
    argv = [
        "--model",
        str(tiny_lm),
        "--data",
        str(SAMPLE),
        "--output",
        str(tmp_path / "cli"),
        "--lr",
        "1e30",
        "--warmup-steps",
        "0",
        "--max-steps",
        "4",
        "--val-size",
        "0",
        "--global-batch-size",
        "8",
        "--no-progress",
    ]
    assert main(argv) == 1
    assert "at step 2" in capsys.readouterr().err


def test_bad_row_stops_the_cli_with_file_and_line(tiny_lm, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(
        SAMPLE.read_text(encoding="utf-8") + '{"instruction": "x", "input": ""}\n', encoding="utf-8"
    )
    argv = ["--model", str(tiny_lm), "--data", str(data), "--output", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 1
    assert f"{data}:41: missing field 'output'" in capsys.readouterr().err


def test_adapter_loads_in_lm_eval_and_merges(finished_run, tiny_lm, tmp_path):
    from lm_eval.models.huggingface import HFLM
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lm = HFLM(pretrained=str(tiny_lm), peft=str(finished_run), device="cpu", batch_size=1)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        from_lm_eval = lm._model_call(ids)
        ours = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm), str(finished_run))(
            ids
        ).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_lm)(ids).logits
    torch.testing.assert_close(from_lm_eval, ours)
    assert not torch.allclose(from_lm_eval, base)
    # the optional merged model gives the same outputs as base + adapter
    from jinstruct.training.train import save_merged

    class _OneProcess:
        is_main_process = True

        def print(self, *args):
            pass

        def wait_for_everyone(self):
            pass

    out = tmp_path / "adapter"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("checkpoints", "cache"))
    save_merged(small_config(tiny_lm, out), out, _OneProcess(), torch.float32)
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out / "merged")(ids).logits
    torch.testing.assert_close(merged, ours, atol=1e-5, rtol=1e-4)


def test_batching_modes_train_the_same_adapter(tiny_lm, tmp_path):
    """The loss is normalised over the whole step, so packing, grouping and the paper's left padding
    to 8 are only speed choices (LoRA dropout off: its masks depend on tensor shapes)."""
    adapters = {}
    for mode, extra in (
        ("pack", {}),
        ("group", {}),
        ("pad", {"pad_to_multiple_of": 8, "padding_side": "left"}),
    ):
        out = train(
            small_config(
                tiny_lm, tmp_path / mode, batching=mode, lora_dropout=0.0, max_steps=2, val_size=0, **extra
            )
        )
        adapters[mode] = adapter(out)
    for mode in ("group", "pad"):
        for name, value in adapters["pack"].items():
            torch.testing.assert_close(adapters[mode][name], value, atol=1e-6, rtol=1e-4)


def test_bf16_autocast_keeps_an_fp32_adapter(tiny_lm, tmp_path):
    out = train(small_config(tiny_lm, tmp_path / "bf16", precision="bf16", max_steps=1, val_size=0))
    info = json.loads((out / "training_config.json").read_text(encoding="utf-8"))["run"]
    assert info["precision"] == "bf16" and info["base_dtype"] == "bfloat16"
    assert all(v.dtype == torch.float32 for v in adapter(out).values())
    assert read_metrics(out / "metrics.jsonl")[0]["loss"] > 0


def test_hub_dataset_rows_are_named_by_split_row(monkeypatch, tmp_path):
    import datasets

    from jinstruct.training.data import DataError, load_rows

    rows = [
        {"instruction": "問い", "input": "", "output": "答え", "category": "qa"},
        {"instruction": "問い", "input": "", "output": None, "category": "qa"},
    ]
    calls = []

    def fake_load_dataset(name, split, revision):
        calls.append((name, split, revision))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(
        DataError, match=r"izumi-lab/llm-japanese-dataset train row 1 \(0-based\): field 'output'"
    ):
        load_rows("izumi-lab/llm-japanese-dataset", "0.1.0", False, False, "trans", None)
    assert calls == [("izumi-lab/llm-japanese-dataset", "train", "0.1.0")]
