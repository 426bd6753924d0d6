"""ja-vg-vqa data: local JSON/zip, env fallback, download integrity, flattening, subsampling."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from jinstruct.harness_tasks.vqa import data as vqa_data
from jinstruct.harness_tasks.vqa.data import VqaDataError, load_pairs, resolve_source, subsample

FIXTURE = Path(__file__).parent / "fixtures" / "vqa" / "question_answers.json"


def _expected_pairs() -> list[tuple[str, str]]:
    images = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [(qa["question"], qa["answer"]) for image in images for qa in image["qas"]]


def _zip_of_fixture(path: Path, member: str = "question_answers.json") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(FIXTURE, member)
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("JA_VG_VQA", raising=False)


def test_json_flattens_every_qa_in_file_order():
    pairs = load_pairs(resolve_source(FIXTURE))
    assert [(p.question, p.answer) for p in pairs] == _expected_pairs()
    assert [p.row for p in pairs] == list(range(len(pairs)))
    assert pairs[0].image_id == 101 and pairs[0].qa_id == 9001


def test_zip_gives_the_same_pairs_as_the_json(tmp_path):
    zipped = _zip_of_fixture(tmp_path / "question_answers.json.zip", "ja-vg-vqa/question_answers.json")
    assert load_pairs(resolve_source(zipped)) == load_pairs(resolve_source(FIXTURE))


def test_env_var_is_the_fallback_and_metadata_wins(tmp_path, monkeypatch):
    folder = tmp_path / "vqa"
    folder.mkdir()
    shutil.copy(FIXTURE, folder / "question_answers.json")
    monkeypatch.setenv("JA_VG_VQA", str(folder))
    assert resolve_source(None).path == folder / "question_answers.json"
    assert resolve_source(None).origin == "env JA_VG_VQA"
    assert resolve_source(FIXTURE).origin == "vqa_path"


def test_corrupt_zip_is_a_clear_error(tmp_path):
    good = _zip_of_fixture(tmp_path / "good.zip").read_bytes()
    bad = tmp_path / "question_answers.json.zip"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(VqaDataError, match=r"question_answers\.json\.zip: not a valid zip file.*Fix"):
        load_pairs(resolve_source(bad))


def test_missing_path_and_bad_rows_name_the_problem(tmp_path):
    with pytest.raises(VqaDataError, match="does not exist"):
        resolve_source(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"id": 1, "qas": [{"question": "何？", "answer": "猫"}, {"question": "色は？"}]}])
    )
    with pytest.raises(VqaDataError, match=r"bad\.json: image #0 qas\[1\] has answer=None"):
        load_pairs(resolve_source(bad))
    bad.write_text(json.dumps({"qas": []}))
    with pytest.raises(VqaDataError, match="expected a JSON list of images"):
        load_pairs(resolve_source(bad))


class _FakeResponse(io.BytesIO):
    """What urlopen returns, with a chosen announced length."""


def _serve(monkeypatch, body: bytes, announced: int | None, calls: list):
    def fetch(url):
        calls.append(url)
        return _FakeResponse(body), announced

    monkeypatch.setattr(vqa_data, "fetch", fetch)


def test_download_is_cached_once(tmp_path, monkeypatch):
    body = _zip_of_fixture(tmp_path / "src.zip").read_bytes()
    calls: list[str] = []
    _serve(monkeypatch, body, len(body), calls)
    cache = tmp_path / "cache"
    first = resolve_source(None, cache_dir=cache)
    second = resolve_source(None, cache_dir=cache)
    assert calls == [vqa_data.VQA_URL]  # fetched once, then read from the cache
    assert first.path == second.path == vqa_data.cached_zip_path(cache)
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]
    assert [(p.question, p.answer) for p in load_pairs(first)] == _expected_pairs()


def test_download_from_a_file_url_with_hf_cache_env(tmp_path, monkeypatch):
    src = _zip_of_fixture(tmp_path / "src.zip")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    got = resolve_source(None, url=src.as_uri())
    assert got.path == tmp_path / "hf" / "jinstruct_ja_vg_vqa" / "question_answers.json.zip"
    assert got.path.read_bytes() == src.read_bytes()


def test_unreachable_source_says_how_to_point_at_a_local_copy(tmp_path, monkeypatch):
    import urllib.error

    def fetch(url):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(vqa_data, "fetch", fetch)
    with pytest.raises(VqaDataError, match=r"could not download .*no route to host.*vqa_path.*JA_VG_VQA"):
        resolve_source(None, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "jinstruct_ja_vg_vqa").iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "sha256"])
def test_bad_download_leaves_nothing_cached(tmp_path, monkeypatch, damage):
    body = _zip_of_fixture(tmp_path / "src.zip").read_bytes()
    calls: list[str] = []
    sha = None
    if damage == "truncated":  # the connection dropped: fewer bytes than announced
        _serve(monkeypatch, body[:-100], len(body), calls)
        message = r"truncated: got \d+ of \d+ bytes\. Nothing was cached"
    elif damage == "corrupt":  # server sent a damaged file with a matching length
        broken = body[:40] + bytes(200) + body[240:]
        _serve(monkeypatch, broken, len(broken), calls)
        message = r"is damaged: .*Nothing was cached"
    else:
        _serve(monkeypatch, body, len(body), calls)
        sha = "0" * 64
        message = r"has sha256 .* expected 0000"
    cache = tmp_path / "cache"
    with pytest.raises(VqaDataError, match=message):
        resolve_source(None, cache_dir=cache, expected_sha256=sha)
    assert list(vqa_data.cached_zip_path(cache).parent.iterdir()) == []
    # A later good download succeeds: the failed one left no file in the way.
    _serve(monkeypatch, body, len(body), calls)
    assert resolve_source(None, cache_dir=cache).path.is_file()


def test_subsample_is_deterministic_and_in_file_order():
    pairs = load_pairs(resolve_source(FIXTURE))
    a, b = subsample(pairs, 7, seed=3), subsample(pairs, 7, seed=3)
    assert a == b and len(a) == 7
    assert [p.row for p in a] == sorted(p.row for p in a)
    assert subsample(pairs, 7, seed=4) != a
    assert subsample(pairs, 1000) == pairs and subsample(pairs, None) == pairs
    with pytest.raises(VqaDataError, match="positive integer"):
        subsample(pairs, 0)
