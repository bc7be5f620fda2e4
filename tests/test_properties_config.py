"""Property tests for the config checker (issue 12): any TOML a user could write loads
or is refused with the project's ConfigError, never anything else; non-finite and absurd
numbers are refused naming the key and its line (exit 6)."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_config
from tokencli.errors import ConfigError
from tokencli.providers.registry import COMMON_FIELDS, PROTOCOLS, fields_of
from tokencli.settings.loader import settings_from_doc
from tokencli.settings.paths import resolve_paths
from tokencli.settings.sections import (
    ALERT_RULE_FIELDS,
    BUDGET_FIELDS,
    CHANNEL_FIELDS,
    DEFAULTS_FIELDS,
    MODEL_FIELDS,
    PRICE_FIELDS,
)

# ------------------------------------------------------------------ TOML text


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise AssertionError(type(value))


def toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324]),
    TEXT,
    st.sampled_from(["openai", "anthropic", "USD", "cny", "day", "month", "https://x.example/v1"]),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def table_of(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    known = st.sampled_from(sorted(fields))
    keys = st.one_of(known, known, known, TEXT)
    return st.dictionaries(keys, VALUES, max_size=4)


def provider_table() -> st.SearchStrategy[dict[str, Any]]:
    all_fields = dict(COMMON_FIELDS)
    for protocol in PROTOCOLS:
        all_fields.update(fields_of(protocol))
    return st.builds(
        lambda t, rest: {**({"type": t} if t is not None else {}), **rest},
        st.none() | st.sampled_from(sorted(PROTOCOLS)) | TEXT,
        table_of(all_fields),
    )


NAMES = st.sampled_from(["openai", "gw", "ollama", "a b", "x.y"]) | TEXT
SECTIONS = {
    "defaults": table_of(DEFAULTS_FIELDS) | VALUES,
    "aliases": st.dictionaries(NAMES, VALUES, max_size=2),
    "providers": st.dictionaries(NAMES, provider_table() | VALUES, max_size=2),
    "models": st.dictionaries(NAMES, table_of(MODEL_FIELDS), max_size=2),
    "prices": st.dictionaries(NAMES, table_of(PRICE_FIELDS), max_size=2),
    "currency": st.fixed_dictionaries(
        {}, optional={"report": VALUES, "rates": st.dictionaries(TEXT, VALUES, max_size=2)}
    ),
    "budgets": st.dictionaries(NAMES, table_of(BUDGET_FIELDS) | VALUES, max_size=2),
    "alerts": st.builds(
        lambda rules, channels: {**rules, **({"channels": channels} if channels else {})},
        table_of(ALERT_RULE_FIELDS),
        st.lists(table_of(CHANNEL_FIELDS), max_size=2),
    ),
}
# Whole documents, and documents of one section (so every section's checks are reached).
DOCS = st.fixed_dictionaries({}, optional=SECTIONS) | st.sampled_from(sorted(SECTIONS)).flatmap(
    lambda name: st.fixed_dictionaries({name: SECTIONS[name]})
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS)
def test_any_config_loads_or_is_a_config_error(doc, tmp_path_factory):
    lines = [f"{toml_str(name)} = {toml_value(value)}" for name, value in doc.items()]
    text = "\n".join(lines) + "\n"
    parsed = tomllib.loads(text)  # the generator writes valid TOML
    home = Path(tmp_path_factory.getbasetemp()) / "prop-home"
    paths = resolve_paths({"TOKENCLI_HOME": str(home)})
    try:
        settings_from_doc(parsed, text, paths, {}, exists=True)
    except ConfigError as exc:
        assert exc.message and "\n" not in exc.message


# ------------------------------------------------------------------ the CLI


@pytest.mark.parametrize("value", ["nan", "inf", "+inf", "-nan", "1e400", "1e300"])
@pytest.mark.parametrize(
    "section,key",
    [
        ("defaults", "temperature"),
        ("providers.openai", "read_timeout"),
        ("providers.openai", "retry_max_wait"),
        ('prices."openai:gpt-4o"', "input"),
        ("budgets.b", "amount"),
        ("alerts", "spike_factor"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused_with_key_and_line(
    cli, home, section, key, value
):
    write_config(home, f"# a comment\n[{section}]\n{key} = {value}\n")
    r = cli("config", "validate")
    assert r.exit_code == 6, r.stderr
    assert "Internal error" not in r.stderr
    assert "(line 3)" in r.stderr and key in r.stderr
    assert r.stderr.count("\n") == 1
