"""The trainer trusts no stale or unsafe state: clipping bounds, output folders, resume checks, no pickle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training_run import SAMPLE, small_config

from jinstruct.training import checkpoint
from jinstruct.training.config import TrainConfig, build_parser, config_from_args
from jinstruct.training.data import DataError, _iter_local, check_source
from jinstruct.training.train import main, train


@pytest.fixture
def base_copy(tiny_lm, tmp_path) -> Path:
    """A private copy of the tiny model: a test that must not write into a model folder gets its own."""
    return Path(shutil.copytree(tiny_lm, tmp_path / "base"))


class _WritesFileWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _lora_b(folder: Path) -> list[torch.Tensor]:
    weights = load_file(folder / "adapter_model.safetensors")
    return [v for k, v in weights.items() if "lora_B" in k]


def test_max_grad_norm_negative_is_refused_and_zero_means_no_clipping(tiny_lm, tmp_path):
    with pytest.raises(ValueError, match=r"max_grad_norm.*>= 0"):
        TrainConfig(model="m", data="d", max_grad_norm=-1).validate()
    out = train(small_config(tiny_lm, tmp_path / "noclip", max_grad_norm=0, max_steps=2, val_size=0))
    assert any(b.abs().sum() > 0 for b in _lora_b(out))  # with 0 as a bound, lora_B would stay exactly zero


def test_negative_warmup_is_refused():
    with pytest.raises(ValueError, match=r"warmup_steps.*>= 0"):
        TrainConfig(model="m", data="d", warmup_steps=-5).validate()


def test_output_refuses_a_foreign_folder_unless_overwrite(tiny_lm, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text("my own notes\n", encoding="utf-8")
    argv = [
        "--model",
        str(tiny_lm),
        "--data",
        str(SAMPLE),
        "--output",
        str(out),
        "--max-steps",
        "1",
        "--val-size",
        "0",
        "--global-batch-size",
        "8",
        "--no-progress",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "pass --overwrite" in err
    assert (out / "metrics.jsonl").read_text(encoding="utf-8") == "my own notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl"]
    assert main([*argv, "--overwrite"]) == 0  # asked for explicitly
    assert (out / "adapter_model.safetensors").is_file()
    assert main(argv) == 0  # now a previous run of ours: a new run may write there


def test_output_never_the_base_models_folder(base_copy):
    before = sorted(p.name for p in base_copy.iterdir())
    with pytest.raises(ValueError, match=r"base model's own folder"):
        train(TrainConfig(model=str(base_copy), data=str(SAMPLE), output=str(base_copy), overwrite=True))
    with pytest.raises(ValueError, match=r"holds a model"):  # any model's folder, even with --overwrite
        train(TrainConfig(model="other/model", data=str(SAMPLE), output=str(base_copy), overwrite=True))
    assert sorted(p.name for p in base_copy.iterdir()) == before
    assert not (base_copy / "adapter_config.json").exists()


def test_resume_loads_no_pickle_and_compares_config_first(tiny_lm, tmp_path):
    out = tmp_path / "out"
    train(small_config(tiny_lm, out, stop_at_step=3))
    (step,) = checkpoint.list_checkpoints(out)
    assert (step / "rng_0.safetensors").is_file() and not list(step.glob("rng_*.pt"))
    marker = tmp_path / "pwned"
    for name in ("rng_0.pt", "rng_0.safetensors.pt"):  # a hostile pickle where a pickle used to be
        torch.save(_WritesFileWhenUnpickled(marker), step / name)
    # A changed LoRA shape gets the "differs" message, not a tensor-size error from loading weights.
    with pytest.raises(ValueError, match=r"cannot resume .*the run differs in lora_r: 4 -> 8"):
        train(small_config(tiny_lm, out, resume=True, lora_r=8))
    with pytest.raises(ValueError, match=r"lora_target_modules: None -> \['dense'\]"):
        train(small_config(tiny_lm, out, resume=True, lora_target_modules=["dense"]))
    train(small_config(tiny_lm, out, resume=True))
    assert not marker.exists()


def test_a_pickled_rng_state_from_an_old_checkpoint_is_refused(tiny_lm, tmp_path):
    out = tmp_path / "out"
    train(small_config(tiny_lm, out, stop_at_step=3))
    (step,) = checkpoint.list_checkpoints(out)
    marker = tmp_path / "pwned"
    (step / "rng_0.safetensors").unlink(missing_ok=True)
    torch.save(_WritesFileWhenUnpickled(marker), step / "rng_0.pt")
    with pytest.raises(ValueError, match=r"older jinstruct as a pickle, which is never loaded"):
        train(small_config(tiny_lm, out, resume=True))
    assert not marker.exists()


def test_target_modules_that_match_nothing_are_refused(tiny_lm, tmp_path):
    with pytest.raises(ValueError, match=r"'query_key_valu' \(did you mean 'query_key_value'\?\)"):
        train(small_config(tiny_lm, tmp_path / "o", lora_target_modules=["dense", "query_key_valu"]))


def test_a_folder_as_data_says_it_is_a_folder(tmp_path):
    with pytest.raises(DataError, match=r"is a folder; --data takes one .json, .jsonl or .parquet file"):
        check_source(str(tmp_path))


def test_bad_json_line_message_reads_well(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "abc\n', encoding="utf-8")
    ((where, err),) = list(_iter_local(data))
    assert "at at" not in str(err) and "column" in str(err) and str(data) in str(err)


def test_train_help_shows_each_default_once():
    text = " ".join(build_parser().format_help().split())
    assert "(default: None)" not in text and ") (default:" not in text
    assert "--max-grad-norm MAX_GRAD_NORM (default: 1.0) --seed" in text


def test_bad_yaml_configs_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1e-4\nseed: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=str(bad)):
        config_from_args(["--config", str(bad), "--model", "m", "--data", "d.jsonl"])
    from jinstruct import demo

    assert demo.main(["--config", str(bad), "--print-config"]) == 2
    assert str(bad) in capsys.readouterr().err
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"seed": 3}), encoding="utf-8")
    assert config_from_args(["--config", str(ok), "--model", "m", "--data", "d.jsonl"]).seed == 3


def test_rng_state_round_trips_through_safetensors_with_cuda_states(tmp_path):
    """The CUDA branch is exercised here without a GPU: states are plain byte tensors either way."""
    import random

    import numpy as np
    from safetensors import safe_open
    from safetensors.torch import load_file as load_tensors
    from safetensors.torch import save_file

    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    path = tmp_path / "rng_0.safetensors"
    checkpoint.save_rng_state(path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    fake_cuda = {f"cuda_{i}": torch.full((16,), i, dtype=torch.uint8) for i in range(3)}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file({**load_tensors(path), **fake_cuda}, str(path), metadata=meta)
    state = checkpoint.load_rng_state(path)
    assert [int(s[0]) for s in state["cuda"]] == [0, 1, 2]
    checkpoint.set_rng_state({k: v for k, v in state.items() if k != "cuda"})
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
