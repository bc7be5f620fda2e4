"""The config editor: one table rewritten in place, every other byte kept."""

from __future__ import annotations

import copy
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokencli.errors import ConfigError, ExitCode
from tokencli.settings import editor, tomlscan
from tokencli.settings.editor import remove_table, set_table, splice_table

CONFIG = Path("config.toml")

# ------------------------------------------------------------------ generators

_BARE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
# Printable text, quotes, brackets, '#', '=' and non-ASCII; no control characters.
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from("\"'[]#=.\\"),
    max_size=12,
)


def _quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _key_text(draw: st.DrawFn, key: str) -> str:
    """`key` as a file might spell it: bare, "basic" or 'literal'."""
    forms = [_quoted(key)]
    if key and all(c in _BARE for c in key):
        forms.append(key)
    if "'" not in key:
        forms.append(f"'{key}'")
    return draw(st.sampled_from(forms))


_SCALARS = (
    st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
# Hand-written value forms tomli-w never produces: multi-line strings holding
# header-like lines, arrays with comments and odd spacing, inline tables.
_ODD_VALUES = st.sampled_from(
    [
        '"""\n[budgets.monthly]\namount = 1 # not a comment\n"""',
        "'''\n[[x]]\n''''",
        '"""a ""\\\n   b"""""',
        "[ 1,\n  # a comment ] with a bracket\n  2, ]",
        '{ a = "]", b = [ "}", { c = 1 } ] }',
        "1979-05-27 07:32:00Z",
        '"# not a comment"',
        "'C:\\path'",
    ]
)
_COMMENTS = _TEXT.map(lambda t: "#" + t.replace("\n", " ").replace("\r", " "))
_BLANKS = st.sampled_from(["", "   ", "\t"])
# A pair the generator writes: its keys start with k or s.
_PAIR_LINE = re.compile(r"""^(k|s|"k|"s|'k|'s)[^=]* = """)


@st.composite
def _pairs(draw: st.DrawFn, prefix: str) -> list[str]:
    """Key/value lines with unique keys (all starting with `prefix`), with comments between."""
    keys = draw(st.lists(st.text(_BARE, max_size=4), max_size=4, unique=True))
    lines: list[str] = []
    for key in keys:
        lines += draw(st.lists(_COMMENTS | _BLANKS, max_size=1))
        value = draw(_ODD_VALUES | _VALUES.map(_rendered_value))
        trailing = draw(st.sampled_from(["", "  # after"]))
        lines.append(f"{draw(_key_text(prefix + key))} = {value}{trailing}")
    return lines


def _rendered_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


@st.composite
def _header(draw: st.DrawFn, key_path: tuple[str, ...], array: bool = False) -> str:
    parts = [draw(_key_text(k)) for k in key_path]
    dot = draw(st.sampled_from([".", " . "]))
    inner = dot.join(parts)
    pad = draw(st.sampled_from(["", " "]))
    opening, closing = ("[[", "]]") if array else ("[", "]")
    comment = draw(st.sampled_from(["", " # header"]))
    return f"{opening}{pad}{inner}{pad}{closing}{comment}"


_TABLE_VALUES = st.dictionaries(
    st.text(min_size=1, max_size=6),
    _VALUES | st.dictionaries(st.text(_BARE, min_size=1, max_size=3), _SCALARS, max_size=2),
    max_size=4,
)
_NAMES = st.sampled_from(["monthly", "team a", "openai:gpt-4o", 'q"uote', "é"])


@dataclass
class Config:
    chunks: list[str]  # the text, in pieces
    target: int | None  # index of the chunk that is the target table's block, if any
    name: str  # the target is ("budgets", name)
    pairs: int  # how many key/value pairs and headers it has
    headers: int

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def without_target(self) -> str:
        return "".join(c for i, c in enumerate(self.chunks) if i != self.target)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """A valid config: root pairs, then tables, arrays of tables, `[budgets.*]` siblings
    and perhaps the target `[budgets.NAME]` (with a sub-table), comments and blank
    lines between; LF or CRLF; with or without a final newline."""
    name = draw(_NAMES)
    newline = draw(st.sampled_from(["\n", "\r\n"]))

    count = {"pairs": 0, "headers": 0}

    def lines(items: list[str]) -> str:
        count["pairs"] += sum(1 for item in items if _PAIR_LINE.match(item))
        count["headers"] += sum(1 for item in items if item.startswith("["))
        return "".join(item + "\n" for item in items)

    sections: list[str] = []
    for i in range(draw(st.integers(0, 3))):
        sections.append(lines([draw(_header((f"sec{i}",))), *draw(_pairs("k"))]))
    for i in range(draw(st.integers(0, 2))):
        sections.append(lines([draw(_header(("budgets", f"b{i}"))), *draw(_pairs("k"))]))
    if draw(st.booleans()):
        sections.append(lines([draw(_header(("budgets",))), *draw(_pairs("k"))]))
    for _ in range(draw(st.integers(0, 2))):
        sections.append(lines([draw(_header(("runs",), array=True)), *draw(_pairs("k"))]))
    sections = draw(st.permutations(sections))

    target = None
    if draw(st.booleans()):
        block = [draw(_header(("budgets", name))), *draw(_pairs("k"))]
        if draw(st.booleans()):
            block += [
                draw(st.sampled_from(["", "# the sub-table"])),
                draw(_header(("budgets", name, "sub"))),
                *draw(_pairs("s")),
            ]
        target = draw(st.integers(0, len(sections)))
        sections.insert(target, lines(block))

    # Comments and blank lines after a block belong to what follows it.
    chunks = [lines(draw(_pairs("k")))]
    for section in sections:
        chunks.append(section)
        chunks.append(lines(draw(st.lists(_COMMENTS | _BLANKS, max_size=2))))
    target_index = None if target is None else 1 + 2 * target
    chunks = [c.replace("\n", newline) for c in chunks]
    if draw(st.booleans()):
        # No final newline.
        last = max((i for i, c in enumerate(chunks) if c), default=None)
        if last is not None:
            chunks[last] = chunks[last].removesuffix(newline)
    config = Config(chunks, target_index, name, count["pairs"], count["headers"])
    tomllib.loads(config.text)  # the generator makes only valid files
    return config


def _expected(doc: dict[str, Any], name: str, table: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    budgets = out.setdefault("budgets", {})
    if table is None:
        budgets.pop(name, None)
        if not budgets:
            del out["budgets"]
    else:
        budgets[name] = table
    return out


PROPERTY = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# ------------------------------------------------------------------ properties


@PROPERTY
@given(configs())
def test_statements_cover_the_text_and_find_every_header_and_pair(config):
    text = config.text
    found = tomlscan.statements(text)
    assert "".join(text[s.start : s.end] for s in found) == text
    assert [s.line for s in found] == [text.count("\n", 0, s.start) + 1 for s in found]
    assert sum(s.kind == "pair" for s in found) == config.pairs
    assert sum(s.is_header for s in found) == config.headers
    budgets = {s.key for s in found if s.kind == "header" and s.key[:1] == ("budgets",)}
    if config.target is not None:
        assert ("budgets", config.name) in budgets


@PROPERTY
@given(configs(), _TABLE_VALUES)
def test_set_table_changes_that_table_and_keeps_every_other_byte(config, table):
    text = config.text
    edit = splice_table(text, ("budgets", config.name), table, CONFIG)

    doc = tomllib.loads(text)
    assert tomllib.loads(edit.text) == _expected(doc, config.name, table)
    # Take the rendered region out: what is left is the file without the old table.
    assert edit.text[: edit.start] + edit.text[edit.end :] == config.without_target()
    # The region is the table, rendered, in the file's line endings.
    newline = "\r\n" if "\r\n" in text else "\n"
    region = edit.text[edit.start : edit.end]
    assert f"[budgets.{_key(config.name)}" in region
    if newline == "\r\n":
        assert "\n" not in region.replace("\r\n", "")
    elif text:
        assert "\r" not in region


@PROPERTY
@given(configs())
def test_remove_table_takes_out_its_block_and_at_most_one_blank_line(config):
    text = config.text
    edit = splice_table(text, ("budgets", config.name), None, CONFIG)
    doc = tomllib.loads(text)
    expected_doc = _expected(doc, config.name, None)
    assert _drop_empty_budgets(tomllib.loads(edit.text)) == _drop_empty_budgets(expected_doc)
    if config.target is None:
        assert edit.text == text
        return
    before = "".join(config.chunks[: config.target])
    after = "".join(config.chunks[config.target + 1 :])
    assert edit.text in {
        before + after,
        before + _drop_first_line(after),
        _drop_last_line(before) + after,
    }


@PROPERTY
@given(configs(), _TABLE_VALUES)
def test_set_then_remove_gives_the_document_without_the_table(config, table):
    key_path = ("budgets", config.name)
    once = splice_table(config.text, key_path, table, CONFIG).text
    twice = splice_table(once, key_path, table, CONFIG).text
    assert twice == once  # setting the same table again changes nothing
    removed = splice_table(once, key_path, None, CONFIG).text
    expected = _expected(tomllib.loads(config.text), config.name, None)
    assert _drop_empty_budgets(tomllib.loads(removed)) == _drop_empty_budgets(expected)


def _key(name: str) -> str:
    return name if all(c in _BARE for c in name) else _quoted(name)


def _drop_empty_budgets(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not (k == "budgets" and v == {})}


def _drop_first_line(text: str) -> str:
    return text.split("\n", 1)[1] if "\n" in text else ""


def _drop_last_line(text: str) -> str:
    body = text[:-1]
    return body[: body.rfind("\n") + 1] if "\n" in body else ""


# --------------------------------------------------------------------- examples


def test_a_new_table_goes_after_its_siblings(tmp_path):
    path = tmp_path / "config.toml"
    original = (
        "# My config\n"
        "[defaults]\n"
        'model = "fast"   # alias\n'
        "\n"
        "[budgets.daily]\n"
        "amount = 5\n"
        "period = 'day'\n"
        "\n"
        "# Providers below\n"
        "[providers.openai]\n"
        'base_url = "https://proxy.example/v1"\n'
    )
    path.write_text(original)
    set_table(path, ("budgets", "monthly"), {"amount": 50, "tag": ["client=acme"]})
    assert path.read_text() == original.replace(
        "period = 'day'\n",
        "period = 'day'\n\n[budgets.monthly]\namount = 50\ntag = [\n    \"client=acme\",\n]\n",
    )
    assert remove_table(path, ("budgets", "monthly")) is True
    assert path.read_text() == original


def test_a_table_is_replaced_where_it_was_with_its_sub_tables(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(
        b"[budgets.monthly]\r\namount = 5 # old\r\n\r\n[budgets.monthly.extra]\r\nx = 1\r\n"
        b"\r\n# next\r\n[other]\r\nk = 'v'\r\n"
    )
    set_table(path, ("budgets", "monthly"), {"amount": 7, "period": "week"})
    assert path.read_bytes() == (
        b'[budgets.monthly]\r\namount = 7\r\nperiod = "week"\r\n'
        b"\r\n# next\r\n[other]\r\nk = 'v'\r\n"
    )


def test_a_new_config_is_created_owner_only(tmp_path):
    path = tmp_path / "dir" / "config.toml"
    set_table(path, ("budgets", "monthly"), {"amount": 50})
    assert path.read_text() == "[budgets.monthly]\namount = 50\n"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_file_keeps_its_mode_and_no_temp_file_is_left(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[defaults]\nmodel = 'x'\n")
    path.chmod(0o640)
    set_table(path, ("budgets", "b"), {"amount": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_symlinked_config_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "dotfiles" / "tokencli.toml"
    real.parent.mkdir()
    real.write_text("# mine\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    set_table(link, ("budgets", "b"), {"amount": 1})
    assert link.is_symlink()
    assert real.read_text() == "# mine\n\n[budgets.b]\namount = 1\n"


def test_a_config_that_does_not_parse_is_never_rewritten(tmp_path):
    path = tmp_path / "config.toml"
    broken = "[defaults]\nmodel = 'x'\nstore_text = \n# keep me\n"
    path.write_text(broken)
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 3") as info:
        set_table(path, ("budgets", "b"), {"amount": 1})
    assert info.value.exit_code == ExitCode.CONFIG
    with pytest.raises(ConfigError):
        remove_table(path, ("defaults",))
    assert path.read_text() == broken


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (
            "[budgets]\nmonthly = { amount = 5 } # inline\nweekly = { amount = 1 }\n\n[other]\n",
            "[budgets]\nweekly = { amount = 1 }\n\n[budgets.monthly]\namount = 9\n\n[other]\n",
        ),
        (
            "budgets.monthly.amount = 5\nbudgets.monthly.period = 'day'\nname = 'x'\n",
            "name = 'x'\n\n[budgets.monthly]\namount = 9\n",
        ),
        (
            "[budgets]\nmonthly.amount = 5\n\n[budgets.monthly.sub]\nx = 1\n",
            "[budgets]\n\n[budgets.monthly]\namount = 9\n",
        ),
    ],
)
def test_inline_and_dotted_definitions_become_a_section(tmp_path, original, expected):
    path = tmp_path / "config.toml"
    path.write_text(original)
    set_table(path, ("budgets", "monthly"), {"amount": 9})
    assert path.read_text() == expected


@pytest.mark.parametrize(
    ("original", "message"),
    [
        ("budgets = { monthly = { amount = 5 } }\n", "(line 1): budgets is an inline table"),
        ("[[budgets]]\namount = 5\n", "(line 1): budgets is an array, not a table"),
        ("[budgets]\nmonthly = 5\n", "(line 2): budgets.monthly is a value, not a table"),
        ("[[budgets.monthly]]\namount = 5\n", "budgets.monthly is an array, not a table"),
    ],
)
def test_definitions_it_cannot_rewrite_are_refused_untouched(tmp_path, original, message):
    path = tmp_path / "config.toml"
    path.write_text(original)
    for edit in (
        lambda: set_table(path, ("budgets", "monthly"), {"amount": 9}),
        lambda: remove_table(path, ("budgets", "monthly")),
    ):
        with pytest.raises(ConfigError) as info:
            edit()
        assert message in str(info.value) and str(path) in str(info.value)
    assert path.read_text() == original


def test_an_edit_that_would_change_anything_else_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    original = "[defaults]\nmodel = 'x'\n"
    path.write_text(original)
    # A splice gone wrong: the rendered table lands without its header.
    monkeypatch.setattr(editor, "_separated", lambda text, at, rendered, nl: "amount = 1\n")
    with pytest.raises(ConfigError, match="cannot rewrite without changing something else"):
        set_table(path, ("budgets", "b"), {"amount": 1})
    assert path.read_text() == original


def test_removing_a_table_that_is_not_there_writes_nothing(tmp_path):
    path = tmp_path / "config.toml"
    assert remove_table(path, ("budgets", "b")) is False
    assert not path.exists()
    path.write_text("[budgets.a]\namount = 1\n")
    before = path.stat().st_mtime_ns
    assert remove_table(path, ("budgets", "b")) is False
    assert path.stat().st_mtime_ns == before


def test_removing_the_last_table_of_a_parent_removes_the_implicit_parent(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[defaults]\nmodel = 'x'\n\n[budgets.a]\namount = 1\n")
    assert remove_table(path, ("budgets", "a")) is True
    assert path.read_text() == "[defaults]\nmodel = 'x'\n"


def test_a_layout_the_scanner_cannot_follow_is_refused_untouched(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("[defaults]\nmodel = 'x'\n")

    def lost(text):
        raise IndexError("string index out of range")

    monkeypatch.setattr(tomlscan, "statements", lost)
    with pytest.raises(ConfigError, match="cannot follow its layout"):
        set_table(path, ("budgets", "b"), {"amount": 1})
    assert path.read_text() == "[defaults]\nmodel = 'x'\n"


def test_keys_are_given_apart():
    with pytest.raises(TypeError, match="give the keys apart"):
        set_table(CONFIG, "budgets.monthly", {"amount": 1})  # type: ignore[arg-type]
