"""`jinstruct leaderboard --shard K/N`: N shards, then `--render-only`, give exactly the single-run table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_leaderboard_run import METADATA, adapter, suite  # noqa: F401  (fixtures)

from jinstruct.leaderboard import main
from jinstruct.leaderboard.config import load_models, load_suite
from jinstruct.leaderboard.runner import parse_shard, shard_units


@pytest.fixture(scope="module")
def setup(tiny_lm, adapter, suite, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("shard")
    models = folder / "models.yaml"
    models.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"name": "tiny-base", "base_model": str(tiny_lm), "backend": "hf-fast", "batch_size": 4},
                    {
                        "name": "tiny-tuned",
                        "base_model": str(tiny_lm),
                        "adapter": str(adapter),
                        "backend": "hf",
                        "batch_size": 4,
                        "base": "tiny-base",
                    },
                ],
                "metadata": METADATA,
                "limit": 4,
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    suite_file = folder / "suite.yaml"
    suite_file.write_text(
        yaml.safe_dump(
            {
                "name": "small",
                "columns": [
                    {"family": "jnli", "title": "JNLI", "shots": [1, 2], "metric": "acc", "scale": 100},
                    {"family": "marcja", "title": "MARC-ja", "shots": [1], "metric": "acc", "scale": 100},
                    {
                        "family": "vqa",
                        "title": "VQA ppl",
                        "shots": [0],
                        "metric": "ppl_paper",
                        "lower_is_better": True,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    return folder, models, suite_file


def _outputs(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text(encoding="utf-8") for name in ("leaderboard.md", "leaderboard.csv")}


def test_shards_together_equal_the_single_run(setup, capsys):
    folder, models, suite_file = setup
    common = ["--models", str(models), "--suite", str(suite_file), "--bootstrap-iters", "0"]
    single, sharded = folder / "single", folder / "sharded"
    assert main([*common, "--out", str(single)]) == 0

    n = 3
    per_shard = []
    for k in range(n):
        assert main([*common, "--out", str(sharded), "--shard", f"{k}/{n}"]) == 0
        assert not (sharded / "leaderboard.md").exists()  # shards render nothing
        per_shard.append(len(list((sharded / "raw").glob("*.json"))))
    units = 2 * 4  # two models x (jnli 1-shot, jnli 2-shot, marc-ja 1-shot, vqa)
    assert per_shard[-1] == units and per_shard == sorted(per_shard) and per_shard[0] < units
    assert sorted(p.name for p in (sharded / "raw").glob("*.json")) == sorted(
        p.name for p in (single / "raw").glob("*.json")
    )
    capsys.readouterr()
    assert main(["--render-only", "--suite", str(suite_file), "--out", str(sharded)]) == 0
    assert main(["--render-only", "--suite", str(suite_file), "--out", str(single)]) == 0
    assert _outputs(sharded) == _outputs(single)
    for raw in (single / "raw").glob("*.json"):
        a, b = (
            json.loads(p.read_text(encoding="utf-8"))["results"] for p in (raw, sharded / "raw" / raw.name)
        )
        assert a == b


def test_every_unit_in_exactly_one_shard(setup):
    _, models, suite_file = setup
    cfg, suite_ = load_models(models), load_suite(str(suite_file))
    all_units = shard_units(cfg.models, suite_, (0, 1))
    parts = [shard_units(cfg.models, suite_, (k, 3)) for k in range(3)]
    assert set().union(*parts) == all_units and sum(map(len, parts)) == len(all_units) == 8


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "0/0"])
def test_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)
