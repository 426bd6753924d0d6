"""The helpers every config loader and every writer share: typed fields and atomic writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from jinstruct.atomic import atomic_write, publish
from jinstruct.fields import coerce_fields, parse_bool


@dataclass
class Knobs:
    steps: int = 1
    rate: float = 0.1
    batch: int | str = 1
    tag: str | None = None
    on: bool = False
    targets: list[str] | None = None
    extra: dict = field(default_factory=dict)


def test_fields_are_coerced_by_their_type_hints():
    got = coerce_fields(
        Knobs,
        {
            "steps": "3",
            "rate": "2e-3",
            "batch": "auto",
            "tag": 7,
            "on": "Yes",
            "targets": "q, v",
            "extra": [("a", 1)],
        },
        "k.yaml",
    )
    assert got == {
        "steps": 3,
        "rate": 0.002,
        "batch": "auto",
        "tag": "7",
        "on": True,
        "targets": ["q", "v"],
        "extra": {"a": 1},
    }
    assert coerce_fields(Knobs, {"batch": 8, "tag": None}, "k.yaml") == {"batch": 8, "tag": None}
    assert coerce_fields(Knobs, {"steps": None}, "k.yaml", null_is_default=True) == {}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"step": 3}, r"k.yaml: unknown key\(s\) 'step' \(did you mean 'steps'\?\)"),
        ({"steps": 1.5}, r"k.yaml: field 'steps' expects int, got 1.5"),
        ({"on": "maybe"}, r"field 'on' expects true/false"),
        ({"rate": None}, r"field 'rate' needs a value, got null"),
        ({"extra": 5}, r"field 'extra' expects dict, got 5"),
    ],
)
def test_bad_values_name_the_place_and_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        coerce_fields(Knobs, values, "k.yaml")


def test_parse_bool_words():
    assert [parse_bool(w) for w in ("TRUE", "on", "1", "no", "Off", "0", "maybe")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        None,
    ]


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    target = tmp_path / "sub" / "data.npz"
    with atomic_write(target) as tmp:
        np.savez(tmp, x=np.arange(3))  # keeps the name: the temp file ends in .npz
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.npz"]


def test_publish_replaces_a_folder(tmp_path):
    old, new = tmp_path / "step-1", tmp_path / ".tmp-step-1"
    old.mkdir()
    (old / "stale").write_text("x")
    new.mkdir()
    (new / "fresh").write_text("y")
    publish(new, old)
    assert [p.name for p in tmp_path.iterdir()] == ["step-1"] and [p.name for p in old.iterdir()] == ["fresh"]
