"""JGLUE data sources, label mapping, error messages; the metrics against scikit-learn."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef

from jinstruct.harness_tasks.jglue import data as jglue_data
from jinstruct.harness_tasks.jglue.data import JNLI, MARC_JA, JGLUEDataError, load_jglue, normalise_label
from jinstruct.harness_tasks.jglue.metrics import balanced_acc, macro_f1, mcc

FIXTURE_JGLUE = Path(__file__).parent / "fixtures" / "JGLUE"
ROW = {"sentence1": "犬が走っています。", "sentence2": "動物が動いています。", "label": "entailment"}


def write_release(root: Path, version: str, train: list, valid: list, name: str = "jnli") -> None:
    folder = root / "datasets" / f"{name}-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, rows in (("train", train), ("valid", valid)):
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
        (folder / f"{stem}-v{version}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_labels_as_int_or_string():
    assert [normalise_label(x, JNLI, "here") for x in ("entailment", "contradiction", "neutral")] == [0, 1, 2]
    assert [normalise_label(x, JNLI, "here") for x in (0, 1, 2, "2")] == [0, 1, 2, 2]
    assert [normalise_label(x, MARC_JA, "here") for x in ("positive", "negative", 1)] == [0, 1, 1]
    for bad in ("含意", 3, -1, True, None, "Entailment"):
        with pytest.raises(JGLUEDataError, match="here: label"):
            normalise_label(bad, JNLI, "here")


def test_fixture_copy_loads_with_gold_indices():
    loaded = load_jglue("jnli", data_dir=FIXTURE_JGLUE)
    assert set(loaded.dataset) == {"train", "validation"}
    assert loaded.dataset["train"][0]["label"] == 0 and loaded.dataset["train"][8]["label"] == 1
    assert loaded.source["jglue_version"] == "1.1"
    assert len(load_jglue("marcja", data_dir=FIXTURE_JGLUE / "datasets").dataset["validation"]) == 10


def test_version_preference_and_env_fallback(tmp_path, monkeypatch):
    write_release(tmp_path, "1.1", [ROW], [ROW])
    write_release(tmp_path, "1.3", [ROW, ROW], [ROW])
    assert load_jglue("jnli", data_dir=tmp_path, prefer_version="1.1").source["jglue_version"] == "1.1"
    assert len(load_jglue("jnli", data_dir=tmp_path, prefer_version="1.3").dataset["train"]) == 2
    assert (
        load_jglue("jnli", data_dir=tmp_path, prefer_version="1.9").source["jglue_version"] == "1.3"
    )  # newest
    monkeypatch.setenv("JGLUE_DIR", str(tmp_path))
    loaded = load_jglue("jnli", prefer_version="1.1")
    assert loaded.source["source"] == "local JGLUE copy (environment JGLUE_DIR)"


def test_explicit_files(tmp_path):
    write_release(tmp_path, "1.1", [ROW] * 3, [ROW])
    train = tmp_path / "pool.json"
    train.write_text(json.dumps(ROW, ensure_ascii=False) + "\n", encoding="utf-8")
    loaded = load_jglue("jnli", data_dir=tmp_path, train_file=train)
    assert len(loaded.dataset["train"]) == 1 and len(loaded.dataset["validation"]) == 1
    assert loaded.source["train_file"] == str(train)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        (json.dumps({"sentence1": "a", "label": "neutral"}), "line 2: missing field 'sentence2'"),
        (json.dumps({**ROW, "sentence2": 5}), "line 2: field 'sentence2' must be a string"),
        (json.dumps({**ROW, "label": "maybe"}), "line 2: label 'maybe' is not one of"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    write_release(tmp_path, "1.1", [ROW], [ROW, line])
    with pytest.raises(JGLUEDataError) as err:
        load_jglue("jnli", data_dir=tmp_path)
    assert str(tmp_path / "datasets" / "jnli-v1.1" / "valid-v1.1.json") in str(err.value)
    assert message in str(err.value)


def test_local_copy_without_a_release_says_what_it_expects(tmp_path):
    (tmp_path / "datasets").mkdir()
    with pytest.raises(JGLUEDataError, match=r"jnli-v1\.N/train-v1\.N\.json"):
        load_jglue("jnli", data_dir=tmp_path)


def test_no_source_reachable_lists_what_was_tried(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub")

    monkeypatch.delenv("JGLUE_DIR", raising=False)
    monkeypatch.setattr(jglue_data.datasets, "load_dataset", unreachable)
    with pytest.raises(JGLUEDataError) as err:
        load_jglue("marcja")
    text = str(err.value)
    assert "shunk031/JGLUE" in text and "refs/convert/parquet" in text and "Rakuten/JGLUE" in text
    assert "data_dir" in text and "JGLUE_DIR" in text


def test_hub_copy_with_int_labels(monkeypatch):
    import datasets

    features = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "contradiction", "neutral"]),
        }
    )
    rows = {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [2, 0]}
    calls = []

    def fake_hub(repo, name=None, revision=None):
        calls.append((repo, name, revision))
        split = datasets.Dataset.from_dict(rows, features=features)
        return datasets.DatasetDict({"train": split, "validation": split})

    monkeypatch.delenv("JGLUE_DIR", raising=False)
    monkeypatch.setattr(jglue_data.datasets, "load_dataset", fake_hub)
    loaded = load_jglue("jnli")
    assert calls == [("shunk031/JGLUE", "JNLI", "refs/convert/parquet")]
    assert loaded.dataset["validation"]["label"] == [2, 0]
    assert loaded.source == {
        "source": "hub",
        "repo": "shunk031/JGLUE",
        "revision": "refs/convert/parquet",
        "config": "JNLI",
    }


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearn(seed):
    rnd = random.Random(seed)
    n_classes = 2 + seed % 2
    gold = [rnd.randrange(n_classes) for _ in range(200)]
    pred = [g if rnd.random() < 0.6 else rnd.randrange(n_classes) for g in gold]
    if seed == 5:  # a class that is predicted but never gold
        gold = [min(g, 1) for g in gold]
    items = list(zip(gold, pred))
    assert balanced_acc(items) == pytest.approx(balanced_accuracy_score(gold, pred), abs=1e-12)
    assert macro_f1(items) == pytest.approx(f1_score(gold, pred, average="macro"), abs=1e-12)
    assert mcc(items) == pytest.approx(matthews_corrcoef(gold, pred), abs=1e-12)


def test_mcc_is_zero_for_a_constant_prediction():
    assert mcc([(0, 1), (1, 1), (2, 1)]) == 0.0 == matthews_corrcoef([0, 1, 2], [1, 1, 1])
