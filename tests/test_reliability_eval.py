"""Scoring trusts nothing stale: result keys cover every setting, typos are named, bad data is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_jglue_tasks import FIXTURE_JGLUE, build_task, synthetic_rows, write_jglue

from jinstruct import generate
from jinstruct.harness_tasks.jglue.data import DATASETS, JGLUEDataError, read_json_lines
from jinstruct.leaderboard import runner
from jinstruct.leaderboard.config import ConfigError, _suite_from_dict, parse_models
from jinstruct.leaderboard.store import Store

ONE_COLUMN = {"columns": [{"family": "marcja", "title": "MARC-ja", "shots": [0], "metric": "acc"}]}


def _cfg(entries: list[dict], data_dir: Path, **extra):
    return parse_models(
        {"models": entries, "metadata": {"data_dir": str(data_dir)}, "limit": 2, **extra}, "t.yaml"
    )


def _adapter(tiny_lm: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_lm),
        LoraConfig(r=2, target_modules=["query_key_value"], init_lora_weights=False),
    )
    model.save_pretrained(out)
    return out


def test_stored_results_are_keyed_by_every_setting(tiny_lm, tmp_path, capsys):
    suite = _suite_from_dict("one", ONE_COLUMN, "test")
    store = Store(tmp_path / "lb")
    data = Path(shutil.copytree(FIXTURE_JGLUE, tmp_path / "JGLUE"))
    adapter = _adapter(tiny_lm, tmp_path / "adapter", seed=1)
    entries = [
        {"name": "f32", "base_model": str(tiny_lm), "backend": "hf", "dtype": "float32"},
        {"name": "bf16", "base_model": str(tiny_lm), "backend": "hf", "dtype": "bfloat16"},
        {"name": "tuned", "base_model": str(tiny_lm), "adapter": str(adapter), "backend": "hf"},
    ]
    report = runner.run(_cfg(entries, data), suite, store, bootstrap_iters=0)
    assert len(report.scored) == 3 and not report.skipped  # dtype alone makes another unit
    assert len({r.key.settings for r in store.records()}) == 3

    assert not runner.run(
        _cfg(entries, data), suite, store, bootstrap_iters=0
    ).scored  # nothing changed: reused

    _adapter(tiny_lm, adapter, seed=2)  # same path, new weights
    (data / "datasets" / "marc_ja-v1.1" / "valid-v1.1.json").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in synthetic_rows("marcja", 4, 9)),
        encoding="utf-8",
    )
    capsys.readouterr()
    report = runner.run(_cfg(entries, data), suite, store, bootstrap_iters=0)
    assert len(report.scored) == 3  # the data changed for all three, the adapter for one
    err = capsys.readouterr().err
    assert "computed under different settings (files.metadata.data_dir: content changed)" in err
    assert "files.adapter: content changed" in err

    other = _cfg(entries[:1], data, suite=None)
    other.metadata["data_dir"] = str(FIXTURE_JGLUE)
    report = runner.run(other, suite, store, bootstrap_iters=0, force=False)
    assert len(report.scored) == 1 and "metadata.data_dir:" in capsys.readouterr().err
    assert len(runner.run(other, suite, store, bootstrap_iters=0, force=True).scored) == 1  # --force stays


def test_table_never_shows_a_result_of_other_settings(tiny_lm, tmp_path):
    from jinstruct.leaderboard.table import build

    suite = _suite_from_dict("one", ONE_COLUMN, "test")
    store = Store(tmp_path / "lb")
    entry = {"name": "m", "base_model": str(tiny_lm), "backend": "hf", "dtype": "float32"}
    runner.run(_cfg([entry], FIXTURE_JGLUE), suite, store, bootstrap_iters=0)
    changed = _cfg([{**entry, "dtype": "bfloat16"}], FIXTURE_JGLUE)
    lb = build(store.records(), suite, changed, reference=None)
    assert lb.rows[0].cells[suite.columns[0].key].value is None  # not computed yet, not the float32 number
    lb = build(store.records(), suite, _cfg([entry], FIXTURE_JGLUE), reference=None)
    assert lb.rows[0].cells[suite.columns[0].key].value is not None


def test_unknown_keys_at_every_level_suggest_the_closest():
    good = {"name": "m", "base_model": "org/m"}
    cases = [
        (
            {"models": [good], "metdata": {}},
            r"t.yaml: unknown key\(s\) 'metdata' \(did you mean 'metadata'\?\)",
        ),
        (
            {"models": [good], "metadata": {"data_dri": "/x"}},
            r"metadata: unknown key\(s\) 'data_dri' \(did you mean",
        ),
        (
            {"models": [{**good, "dtyp": "float16"}]},
            r"models\[0\]: unknown key\(s\) 'dtyp' \(did you mean 'dtype'",
        ),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_models(raw, "t.yaml")
    with pytest.raises(ConfigError, match=r"'metirc' \(did you mean 'metric'\?\)"):
        _suite_from_dict("s", {"columns": [{"family": "jnli", "metirc": "acc"}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"'colums' \(did you mean 'columns'\?\)"):
        _suite_from_dict("s", {"colums": [], "columns": [{"family": "jnli"}]}, "s.yaml")


def test_leaderboard_metadata_flag_typo_is_refused(tmp_path, capsys):
    from jinstruct.leaderboard import main

    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - {name: m, base_model: org/m}\n", encoding="utf-8")
    assert (
        main(["--models", str(models), "--out", str(tmp_path / "o"), "--metadata", '{"vqa_pth": "x"}']) == 2
    )
    assert "--metadata: unknown key(s) 'vqa_pth' (did you mean 'vqa_path'?)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_suite_name_cannot_leave_results(tmp_path):
    for name in ("../../x", "a/b", ".."):
        with pytest.raises(ConfigError, match=r"must be one folder name"):
            _suite_from_dict(name, {"columns": [{"family": "jnli"}]}, "s.yaml")
    bad = tmp_path / "s.yaml"
    bad.write_text("name: ../../x\ncolumns:\n  - {family: jnli}\n", encoding="utf-8")
    from jinstruct.leaderboard.config import load_suite

    with pytest.raises(ConfigError, match=r"'../../x' must be one folder name"):
        load_suite(str(bad))


def test_task_name_typo_suggests_ours(tiny_lm):
    with pytest.raises(ConfigError, match=r"jnli_v3.*did you mean 'jnli_v03'"):  # a suite's `task:` typo
        runner._task_manager({}, ["jnli_v3"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jinstruct",
            "eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_lm}",
            "--tasks",
            "jnli_v3",
            "--limit",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2 and "did you mean 'jnli_v03'" in proc.stderr, proc.stderr[-3000:]
    from jinstruct.names import task_hint

    assert task_hint(["hellaswag"]) == ""  # nothing close among ours: lm-eval's own message stands


def test_fewshot_pool_smaller_than_shots_names_task_pool_and_fix(tmp_path):
    write_jglue(tmp_path, "marcja", synthetic_rows("marcja", 2, 1), synthetic_rows("marcja", 5, 2))
    task = build_task("marcja_v02", data_dir=str(tmp_path))
    task.set_config("num_fewshot", 3)
    with pytest.raises(
        ValueError, match=r"task marcja_v02: --num_fewshot 3 is too many: .*holds 2.*Lower"
    ) as err:
        task.build_all_requests(limit=2, rank=0, world_size=1)
    assert type(err.value).__name__ == "FewShotPoolError"  # `jinstruct eval` prints it without a traceback


def test_shift_jis_jglue_file_names_file_and_encoding(tmp_path):
    path = tmp_path / "valid-v1.1.json"
    row = {"review_id": "R1", "sentence": "とても良い商品でした。", "label": "positive"}
    path.write_bytes((json.dumps(row, ensure_ascii=False) + "\n").encode("shift_jis"))
    with pytest.raises(JGLUEDataError, match=rf"{path}, line 1: not UTF-8 .*iconv -f SHIFT_JIS"):
        read_json_lines(path, DATASETS["marcja"])


def _vqa_file(path: Path, answers: list[str]) -> Path:
    qas = [
        {"question": f"何がありますか{i}？", "answer": a, "qa_id": i, "image_id": 1}
        for i, a in enumerate(answers)
    ]
    path.write_text(json.dumps([{"id": 1, "qas": qas}], ensure_ascii=False), encoding="utf-8")
    return path


def test_empty_vqa_answers_are_counted_and_all_empty_is_refused(tiny_lm, tmp_path):
    from jinstruct.harness_tasks.vqa.task import DocRecord, build_dataset

    only_empty = _vqa_file(tmp_path / "empty.json", ["", "  "])
    with pytest.raises(ValueError, match=rf"{only_empty}: every one of the 2 VQA pairs .* empty answer"):
        build_dataset("ja", pretrained=str(tiny_lm), vqa_path=str(only_empty))
    from jinstruct.harness_tasks.vqa.metrics import n_empty_answers

    mixed = _vqa_file(tmp_path / "mixed.json", ["犬", "", "赤い車"])
    docs, run = build_dataset("ja", pretrained=str(tiny_lm), vqa_path=str(mixed))
    records = [DocRecord(run)(doc, [(-1.0, False), (0.0, False)])["n_empty_answers"] for doc in docs["test"]]
    assert n_empty_answers(records) == 1


def test_generate_out_jsonl_keeps_the_markdown(tmp_path):
    gens = [generate.Generation("m", "質問", "答え", 1.0, 2, 0.1)]
    md, jsonl = generate.write(gens, tmp_path / "g.jsonl")
    assert md != jsonl and md.name == "g.md" and "| 質問 | 答え |" in md.read_text(encoding="utf-8")
    assert json.loads(jsonl.read_text(encoding="utf-8"))["output"] == "答え"


def test_generate_checks_paths_first_and_keeps_partial_output(tiny_lm, tmp_path, capsys):
    out = tmp_path / "g.md"
    argv = ["--model", str(tiny_lm), "--max-new-tokens", "2", "--no-stream", "--out", str(out)]
    assert generate.main([*argv, "--adapter", str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert "missing is not a local folder" in captured.err and "=== base" not in captured.out
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text(
        "{}", encoding="utf-8"
    )  # passes the path check, fails to load
    assert generate.main([*argv, "--adapter", str(broken)]) == 1
    text = out.read_text(encoding="utf-8")
    assert "Incomplete" in text and "| base |" in text  # the base model's generations were kept
    assert len(out.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()) == len(
        generate.DEFAULT_PROMPTS
    )
