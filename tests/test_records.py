"""Record: dataclass-like value classes without per-class code generation."""

from __future__ import annotations

from typing import ClassVar

import pytest

from tokencli.records import Record, field


class Point(Record):
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict)


class Labelled(Point):
    label: str = ""


class Pair(Record):
    n: int
    s: str


def test_fields_in_order_with_defaults_and_fresh_factories():
    a, b = Point(1), Point(1)
    assert (a.x, a.y, a.tags) == (1, 0, {})
    assert a.tags is not b.tags  # a factory default is made per instance
    assert Point(1, 2, {"k": "v"}) == Point(x=1, y=2, tags={"k": "v"})
    assert Labelled(1, label="here").label == "here" and Labelled._fields == (
        "x",
        "y",
        "tags",
        "label",
    )
    assert Point.kind == "point" and "kind" not in Point._fields


def test_equal_records_hash_alike_and_differ_from_other_types():
    assert Labelled(1, label="a") == Labelled(1, label="a")
    assert Labelled(1) != Point(1)
    assert len({Pair(1, "a"), Pair(1, "a"), Pair(2, "a")}) == 2
    with pytest.raises(TypeError):  # like a frozen dataclass holding a dict
        hash(Point(1))
    assert repr(Point(1)) == "Point(x=1, y=0, tags={})"


def test_records_refuse_assignment_and_bad_arguments():
    point = Point(1)
    with pytest.raises(AttributeError, match="immutable"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="needs 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected or repeated argument 'z'"):
        Point(1, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="repeated argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="at most 3 arguments"):
        Point(1, 2, {}, 4)  # type: ignore[call-arg]


def test_replace_makes_a_changed_copy():
    point = Labelled(1, 2, label="a")
    moved = point.replace(y=5)
    assert (moved, point.y) == (Labelled(1, 5, label="a"), 2)
    with pytest.raises(TypeError, match="unexpected"):
        point.replace(z=1)
