"""ja-vg-vqa read as a stream: the same pairs as parsing the whole file, whatever the buffer size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jinstruct.harness_tasks.vqa import data as vqa_data

FIXTURE = Path(__file__).parent / "fixtures" / "vqa" / "question_answers.json"


def _whole_file_pairs(path: Path) -> list[tuple[int, str, str]]:
    images = json.loads(path.read_text(encoding="utf-8"))
    flat = [qa for image in images for qa in image["qas"]]
    return [(i, qa["question"], qa["answer"]) for i, qa in enumerate(flat)]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_stream_equals_whole_file_at_any_buffer_size(monkeypatch, chunk, tmp_path):
    monkeypatch.setattr(vqa_data, "_CHUNK", chunk)
    # Odd spacing between and around the elements, as a pretty-printer or an editor may leave it.
    images = json.loads(FIXTURE.read_text(encoding="utf-8"))
    spaced = tmp_path / "spaced.json"
    spaced.write_text(" \n[ " + " ,\n\t".join(json.dumps(i, ensure_ascii=False) for i in images) + " ]\n")
    for path in (FIXTURE, spaced):
        got = [(p.row, p.question, p.answer) for p in vqa_data.iter_pairs(path)]
        assert got == _whole_file_pairs(FIXTURE)
    assert vqa_data.count_pairs(str(spaced), "x") == len(_whole_file_pairs(FIXTURE))


def test_cut_short_or_broken_files_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(vqa_data, "_CHUNK", 16)
    text = FIXTURE.read_text(encoding="utf-8")
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(vqa_data.VqaDataError, match=r"cut\.json: not valid UTF-8 JSON.*Fix"):
        list(vqa_data.iter_pairs(cut))
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(vqa_data.VqaDataError, match="holds no question/answer pairs"):
        list(vqa_data.iter_pairs(empty))


def test_sample_rows_match_the_list_subsample():
    pairs = vqa_data.load_pairs(vqa_data.resolve_source(FIXTURE))
    rows = vqa_data.sample_rows(len(pairs), 5, seed=3)
    assert [pairs[r] for r in rows] == vqa_data.subsample(pairs, 5, seed=3)
    assert vqa_data.sample_rows(len(pairs), len(pairs), seed=3) is None
