"""Presets carry Table I; precedence is defaults < preset < paper-parity < config file < flags."""

from __future__ import annotations

import pytest

from jinstruct.training.config import (
    TrainConfig,
    available_presets,
    build_parser,
    config_from_args,
    deepspeed_config_path,
    load_preset,
)


def test_presets_carry_table_one():
    assert set(available_presets()) == {"stormy", "instruct-llama-7b", "instruct-llama-13b"}
    stormy = config_from_args(["--preset", "stormy"])
    assert (stormy.model, stormy.data) == (
        "cyberagent/open-calm-7b",
        "izumi-lab/llm-japanese-dataset-vanilla",
    )
    assert (stormy.lr, stormy.seq_len, stormy.global_batch_size, stormy.epochs) == (3e-4, 300, 128, 10)
    assert (stormy.lora_r, stormy.lora_alpha, stormy.lora_dropout) == (4, 16, 0.05)
    assert stormy.lora_target_modules == ["query_key_value"] and stormy.language == "ja"
    llama7 = config_from_args(["--preset", "instruct-llama-7b"])
    assert (llama7.seq_len, llama7.global_batch_size, llama7.epochs, llama7.language) == (256, 128, 5, "en")
    assert (
        llama7.lora_target_modules == ["q_proj", "v_proj"] and llama7.data == "izumi-lab/llm-japanese-dataset"
    )
    llama13 = config_from_args(["--preset", "instruct-llama-13b"])
    assert (llama13.global_batch_size, llama13.epochs) == (130, 1)
    for name in available_presets():
        assert load_preset(name)["val_size"] == 2000 and load_preset(name)["split_seed"] == 42


def test_precedence_file_then_flags(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("seq_len: 128\nlr: 1.0e-4\nlora_target_modules: [a, b]\nmerge: true\n", encoding="utf-8")
    config = config_from_args(
        [
            "--preset",
            "stormy",
            "--paper-parity",
            "--config",
            str(cfg),
            "--lr",
            "2e-4",
            "--no-merge",
            "--lora-target-modules",
            "x,y",
        ]
    )
    assert config.preset == "stormy" and config.model == "cyberagent/open-calm-7b"
    assert config.seq_len == 128  # file beats preset
    assert config.lr == 2e-4  # flag beats file
    assert config.merge is False and config.lora_target_modules == ["x", "y"]
    # the paper-parity overlay: whole-sequence loss, left padding to 8, no grouping, fp32 base
    assert (
        config.loss_on,
        config.batching,
        config.pad_to_multiple_of,
        config.padding_side,
        config.base_fp32,
    ) == ("all", "pad", 8, "left", True)


def test_defaults_are_ours_not_the_papers():
    config = TrainConfig(model="m", data="d")
    config.validate()
    assert config.loss_on == "response" and config.batching == "auto" and config.val_size == 2000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "m", "--data", "d", "--loss-on", "prompt"], "loss_on"),
        (["--model", "m", "--data", "d", "--seq-len", "0"], "seq_len"),
        (["--data", "d"], "no base model"),
        (["--preset", "nope"], "unknown preset"),
        (["--model", "m", "--data", "d", "--seq-len", "1.5"], "expects int"),
    ],
)
def test_bad_settings_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        config_from_args(argv)


def test_unknown_field_in_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sequence_length: 10\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown config field 'sequence_length'"):
        config_from_args(["--config", str(cfg)])


def test_every_field_has_a_flag_and_bundled_deepspeed_configs_exist():
    help_text = build_parser().format_help()
    for flag in (
        "--max-steps",
        "--resume",
        "--skip-bad-rows",
        "--drop-translation",
        "--deepspeed",
        "--merge",
    ):
        assert flag in help_text
    for name in ("zero2", "zero2-offload", "zero3"):
        assert deepspeed_config_path(name).is_file()
