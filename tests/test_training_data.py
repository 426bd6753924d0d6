"""Rows in: validation with file and line, templates, truncation/EOS, masking, the split."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from jinstruct.prompts import instruction_prompt
from jinstruct.training.data import DataError, DataReport, load_rows, split_rows, tokenize_rows

ROWS = [
    {"instruction": "日本で一番高い山は何ですか。", "input": "", "output": "富士山です。"},
    {
        "instruction": "次の文を英語にしてください。",
        "input": "猫が寝ている。",
        "output": "A cat is sleeping.",
    },
    {"instruction": "好きな季節を一つ挙げてください。", "input": "", "output": "秋です。"},
]
PATTERN = r"(?i)trans"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def load(path, skip=False, drop=False, max_rows=None):
    return load_rows(str(path), None, skip, drop, PATTERN, max_rows)


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"instruction": "x", "input": ""}, "missing field 'output'"),
        ({"instruction": "x", "input": "", "output": 5}, "field 'output' must be a string"),
        ({"instruction": "x", "input": None, "output": "y"}, "field 'input' must be a string"),
        ({"instruction": "x", "input": "", "output": "  "}, "empty 'output'"),
        (["not", "an", "object"], "expected an object"),
    ],
)
def test_bad_row_stops_with_file_and_line(tmp_path, bad, problem):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[1], bad, ROWS[2]])
    with pytest.raises(DataError) as info:
        load(path)
    assert f"{path}:3: {problem}" in str(info.value) and "--skip-bad-rows" in str(info.value)


def test_skip_bad_rows_counts_and_reports(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(ROWS[0], ensure_ascii=False)
        + "\n{broken json\n\n"
        + json.dumps({"instruction": "x"})
        + "\n"
        + json.dumps(ROWS[1], ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    rows, report = load(path, skip=True)
    assert len(rows) == 2 and report.bad_rows == 2 and report.rows_read == 4  # the blank line is not a row
    assert report.bad_row_examples[0].startswith(f"{path}:2: not valid JSON")
    assert "skipped 2 invalid rows" in "\n".join(report.lines())


def test_json_list_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.json").write_text(
        json.dumps(ROWS + [{"instruction": "x", "input": ""}], ensure_ascii=False), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"d.json row 3 \(0-based\): missing field 'output'"):
        load(tmp_path / "d.json")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    rows, _ = load(tmp_path / "d.parquet")
    assert rows == ROWS
    with pytest.raises(DataError, match="unsupported file type"):
        (tmp_path / "d.csv").write_text("a,b\n")
        load(tmp_path / "d.csv")


def test_missing_local_file_fails_fast(tmp_path):
    from jinstruct.training.data import check_source

    with pytest.raises(DataError, match="data file not found"):
        check_source(str(tmp_path / "nope.jsonl"))
    check_source("izumi-lab/llm-japanese-dataset")  # a hub id is left to the hub


def test_drop_translation_by_category(tmp_path):
    rows = [dict(r, category=c) for r, c in zip(ROWS, ["qa", "alt-translation-j-e", "qa"])]
    rows, report = load(write_jsonl(tmp_path / "d.jsonl", rows), drop=True)
    assert len(rows) == 2 and report.translation_rows_dropped == 1
    assert report.translation_categories == {"alt-translation-j-e": 1}
    with pytest.raises(DataError, match="needs a 'category' column"):
        load(write_jsonl(tmp_path / "n.jsonl", ROWS), drop=True)


def test_split_is_datasets_train_test_split_seed_42():
    from datasets import Dataset

    rows = [{"instruction": f"問{i}", "input": "", "output": f"答{i}"} for i in range(50)]
    train, val = split_rows(rows, 7, 42)
    expected = Dataset.from_list(rows).train_test_split(test_size=7, shuffle=True, seed=42)
    assert val == expected["test"].to_list() and train == expected["train"].to_list()
    with pytest.raises(DataError, match="--val-size 50 leaves no training rows"):
        split_rows(rows, 50, 42)
    assert split_rows(rows, 0, 42) == (rows, [])


def test_tokenize_template_truncation_eos_and_mask(tiny_lm):
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    eos = tok.eos_token_id
    report = DataReport("t")
    data = tokenize_rows(ROWS, tok, seq_len=512, language="ja", loss_on="response", report=report)
    for i, row in enumerate(ROWS):
        prompt = instruction_prompt(row["instruction"], row["input"], "ja")
        ids = tok(prompt + row["output"])["input_ids"]
        assert data.example(i).tolist() == ids + [eos]  # whole string tokenized, EOS appended
        assert data.masked[i] == len(tok(prompt)["input_ids"])  # the prompt is excluded from the loss
    assert report.eos_added == 3 and report.truncated == 0
    # right truncation keeps the first tokens, and EOS is not appended when the sequence is full
    short = tokenize_rows(ROWS, tok, seq_len=20, language="ja", loss_on="all", report=DataReport("t"))
    full = tokenize_rows(ROWS, tok, seq_len=512, language="ja", loss_on="all", report=DataReport("t"))
    for i in range(3):
        assert short.example(i).tolist() == full.example(i).tolist()[:20]
        assert eos not in short.example(i).tolist() and short.masked[i] == 0
    # English template (Alpaca) for LLaMA-style runs
    en = tokenize_rows(ROWS[:1], tok, seq_len=512, language="en", loss_on="all", report=DataReport("t"))
    assert tok.decode(en.example(0)).startswith("Below is an instruction")


def test_prompt_filling_seq_len_is_dropped_and_reported(tiny_lm):
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    report = DataReport("t")
    rows = ROWS + [{"instruction": "とても長い指示です。" * 100, "input": "", "output": "はい。"}]
    data = tokenize_rows(rows, tok, seq_len=256, language="ja", loss_on="response", report=report)
    assert len(data) == 3 and report.no_response_tokens == 1
    assert "dropped 1 examples whose prompt fills seq_len" in "\n".join(report.lines())
    with pytest.raises(DataError, match="raise --seq-len"):
        tokenize_rows(ROWS, tok, seq_len=10, language="ja", loss_on="response", report=DataReport("t"))
