"""The leaderboard's inputs: models files, suites, task names, pairing, and their error messages."""

from __future__ import annotations

import pytest

from jinstruct.leaderboard.config import ConfigError, load_models, load_suite, parse_models, task_name


def test_task_names_follow_prompt_version_and_family():
    assert task_name("jnli", "0.2") == "jnli_v02"
    assert task_name("jnli", "0.3") == "jnli_v03"
    assert task_name("jnli", "0.5") == "jnli13_v05"  # 0.4-0.6 exist only with the 1.3 label words
    assert task_name("marcja", "0.6") == "marcja_v06"
    assert task_name("vqa", "0.2", "ja") == "vqa_ppl"
    assert task_name("vqa", "0.3", "en") == "vqa_ppl_en"
    with pytest.raises(ConfigError, match="0.7"):
        task_name("jnli", "0.7")


def test_paper_suite_is_table_two():
    suite = load_suite("paper")
    assert [c.heading for c in suite.columns] == [
        "JNLI 1-shot",
        "JNLI 2-shot",
        "JNLI 3-shot",
        "MARC-ja 1-shot",
        "MARC-ja 2-shot",
        "MARC-ja 3-shot",
        "VQA ppl",
    ]
    spec = parse_models({"models": [{"name": "s", "base_model": "m", "prompt_version": "0.2"}]}).models[0]
    # Every column of a model becomes one (task, shots) unit; extra columns reuse them.
    assert suite.units(spec) == [
        ("jnli_v02", 1),
        ("jnli_v02", 2),
        ("jnli_v02", 3),
        ("marcja_v02", 1),
        ("marcja_v02", 2),
        ("marcja_v02", 3),
        ("vqa_ppl", 0),
    ]


def test_pairs_by_base_model_or_explicit_base():
    cfg = parse_models(
        {
            "models": [
                {"name": "calm", "base_model": "cyberagent/open-calm-7b"},
                {
                    "name": "stormy",
                    "base_model": "cyberagent/open-calm-7b",
                    "adapter": "izumi-lab/stormy-7b-10ep",
                    "prompt_version": "0.2",
                },
                {"name": "llama", "base_model": "llama-7b"},
                {"name": "other", "base_model": "x", "base": "llama"},
            ]
        }
    )
    assert [(b.name, t.name) for b, t in cfg.pairs()] == [("calm", "stormy"), ("llama", "other")]
    assert cfg.models[1].lm_eval_args() == {
        "pretrained": "cyberagent/open-calm-7b",
        "dtype": "float32",
        "peft": "izumi-lab/stormy-7b-10ep",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"models": []}, "non-empty `models:`"),
        ({"models": [{"name": "a"}]}, r"models\[0\] has no `base_model:`"),
        (
            {"models": [{"base_model": "m", "adaptor": "x"}]},
            r"unknown key\(s\) 'adaptor' \(did you mean 'adapter'\?\)",
        ),
        (
            {"models": [{"name": "a", "base_model": "m"}, {"name": "a", "base_model": "n"}]},
            "repeated: \\['a'\\]",
        ),
        ({"models": [{"name": "a", "base_model": "m", "base": "zz"}]}, "base: 'zz'"),
        ({"models": [{"base_model": "m", "vqa_language": "fr"}]}, "vqa_language"),
    ],
)
def test_bad_models_files_name_the_file_and_entry(raw, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_models(raw, "models.yaml")
    assert "models.yaml" in str(err.value)


def test_load_models_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_models(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_models(bad)


def test_custom_suite_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "name: mine\ncolumns:\n  - {task: jnli13_v03, title: JNLI-1.3, shots: [3], metric: macro_f1}\n"
    )
    suite = load_suite(str(f))
    assert suite.name == "mine" and suite.columns[0].task_for(None) == "jnli13_v03"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="built-in suites"):
        load_suite(str(tmp_path / "nope.yaml"))
