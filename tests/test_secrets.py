"""Issue 12, class 6: credentials in URLs and headers never reach stderr, the ledger,
exports or `config show`; a query string in base_url is kept as a query."""

from __future__ import annotations

import base64
import json
import sqlite3
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import write_config
from tests.fakes import (
    gemini_response,
    gemini_usage,
    json_reply,
    openai_chunks,
    openai_usage,
    sse,
    sse_reply,
)
from tokencli.redact import REDACTED, redact

USER_PW = "pwSECRET9x"
QUERY_KEY = "qSECRETkey7"
API_KEY = "zz-apikeySECRET-0123456789"


def gateway_config(home, server, query="key=" + QUERY_KEY + "&region=eu") -> str:
    url = server.url.replace("http://", f"http://bob:{USER_PW}@") + "/v1?" + query
    write_config(
        home,
        "[providers.gw]\n"
        'type = "openai"\n'
        f'base_url = "{url}"\n'
        'api_key_env = "GW_KEY"\n'
        "key_required = true\n"
        "max_retries = 0\n"
        'prices_from = "openai"\n',
    )
    return url


def secrets_in(text: str) -> list[str]:
    basic = base64.b64encode(f"bob:{USER_PW}".encode()).decode()
    return [s for s in (USER_PW, QUERY_KEY, API_KEY, basic, "HDRsecret", "GOOGsecret") if s in text]


def all_ledger_text(home) -> str:
    conn = sqlite3.connect(home / "ledger.db")
    try:
        rows = conn.execute("SELECT * FROM calls").fetchall()
    finally:
        conn.close()
    return json.dumps([list(r) for r in rows], default=str)


def test_query_string_in_base_url_is_kept_on_every_request(cli, home, server, monkeypatch):
    monkeypatch.setenv("GW_KEY", API_KEY)
    gateway_config(home, server)
    server.queue(sse_reply(sse(openai_chunks(["ok"], openai_usage(2, 1)))))
    r = cli("run", "-m", "gw:gpt-4o-mini", "hi")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "ok\n"
    path = server.requests[0].path
    assert path.startswith("/v1/chat/completions?")
    assert sorted(path.partition("?")[2].split("&")) == sorted(["key=" + QUERY_KEY, "region=eu"])


def test_gemini_keeps_its_own_query_beside_the_base_urls(cli, home, server, monkeypatch):
    monkeypatch.setenv("GW_KEY", API_KEY)
    write_config(
        home,
        "[providers.gg]\n"
        'type = "gemini"\n'
        f'base_url = "{server.url}/v1beta?key={QUERY_KEY}"\n'
        'api_key_env = "GW_KEY"\n'
        'prices_from = "google"\n',
    )
    server.queue(sse_reply(sse([gemini_response(["hi"], gemini_usage(3, 1))], done=False)))
    r = cli("run", "-m", "gg:gemini-2.5-flash", "hi")
    assert r.exit_code == 0, r.stderr
    path, _, query = server.requests[0].path.partition("?")
    assert path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sorted(query.split("&")) == ["alt=sse", f"key={QUERY_KEY}"]


def test_echoed_credentials_never_reach_stderr_ledger_or_exports(cli, home, server, monkeypatch):
    monkeypatch.setenv("GW_KEY", API_KEY)
    url = gateway_config(home, server)
    # First a failure whose body echoes what a careless gateway echoes: the URL and headers.
    basic = base64.b64encode(f"bob:{USER_PW}".encode()).decode()
    echoed = (
        f"bad request to POST {url.replace('/v1?', '/v1/chat/completions?')} with headers "
        f"{{'authorization': 'Basic {basic}', 'x-api-key': 'HDRsecret', "
        f"'x-goog-api-key': 'GOOGsecret', 'api-key': 'HDRsecret'}}; "
        f"Authorization: Bearer {API_KEY}"
    )
    server.queue(json_reply({"error": {"message": echoed}}, status=400))
    first = cli("run", "-m", "gw:gpt-4o-mini", "hi")
    assert first.exit_code == 4
    assert secrets_in(first.stderr) == [], first.stderr
    assert REDACTED in first.stderr
    # Then a server that echoes exactly what it was sent (path and every header).
    sent = server.requests[0]
    raw = json.dumps({"path": sent.path, "headers": sent.headers})
    server.queue(json_reply({"error": {"message": raw}}, status=401))
    second = cli("run", "-m", "gw:gpt-4o-mini", "hi")
    assert second.exit_code == 4
    assert secrets_in(second.stderr) == [], second.stderr

    assert secrets_in(all_ledger_text(home)) == []
    for args in (
        ("ledger", "export", "--format", "jsonl"),
        ("ledger", "export", "--format", "csv"),
        ("logs", "--json"),
        ("logs",),
    ):
        out = cli(*args)
        assert out.exit_code == 0, (args, out.stderr)
        assert secrets_in(out.stdout + out.stderr) == [], args


def test_unreachable_gateway_error_names_no_secret(cli, home, monkeypatch):
    monkeypatch.setenv("GW_KEY", API_KEY)
    write_config(
        home,
        "[providers.gw]\n"
        'type = "openai"\n'
        f'base_url = "http://bob:{USER_PW}@127.0.0.1:9/v1?api_key={QUERY_KEY}"\n'
        'api_key_env = "GW_KEY"\n'
        "max_retries = 0\n",
    )
    r = cli("run", "-m", "gw:gpt-4o-mini", "hi")
    assert r.exit_code == 5
    assert secrets_in(r.stderr) == []
    assert secrets_in(all_ledger_text(home)) == []


def test_config_show_redacts_credentials_in_base_urls(cli, home, server):
    gateway_config(home, server, query=f"Access_Token={QUERY_KEY}&sig=abc123SIG")
    for args in (("config", "show"), ("config", "show", "--json")):
        r = cli(*args)
        assert r.exit_code == 0, r.stderr
        assert secrets_in(r.stdout) == [] and "abc123SIG" not in r.stdout, r.stdout
        assert "127.0.0.1" in r.stdout  # the rest of the URL is still there


# ------------------------------------------------------------------ the redactor


def test_redact_forms():
    assert redact("https://u:p4ss@h.example/v1?key=abc&model=x") == (
        f"https://{REDACTED}@h.example/v1?key={REDACTED}&model=x"
    )
    assert redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {REDACTED}"
    assert redact('{"x-goog-api-key": "AIzaabc"}') == f'{{"x-goog-api-key": "{REDACTED}"}}'
    assert redact("HTTP Basic authentication required") == "HTTP Basic authentication required"
    assert redact("input tokens: 12, model=gpt") == "input tokens: 12, model=gpt"


NAMES = (
    "key", "api_key", "apikey", "token", "access_token", "signature", "sig", "secret",
    "password", "auth", "x-goog-signature", "client_secret", "refresh_token", "api-key",
)  # fmt: skip
SECRET = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,",
    min_size=4,
    max_size=40,
).map(lambda s: "S3CR" + s)
PLAIN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=12)


def _case(name: str, flips: list[bool]) -> str:
    flips = (flips + [False] * len(name))[: len(name)]
    return "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))


@given(
    secret=SECRET,
    name=st.sampled_from(NAMES),
    flips=st.lists(st.booleans(), max_size=20),
    host=st.sampled_from(["gw.example.com", "127.0.0.1:8080", "[::1]:9"]),
    scheme=st.sampled_from(["https", "http", "wss"]),
    path=st.lists(PLAIN, max_size=3),
    before=st.lists(st.tuples(PLAIN.filter(lambda s: s not in NAMES), PLAIN), max_size=2),
    after=st.lists(st.tuples(PLAIN.filter(lambda s: s not in NAMES), PLAIN), max_size=2),
    form=st.sampled_from(["query", "fragment", "userinfo", "user", "json", "encoded"]),
    context=st.sampled_from(["{}", "error at {} (retry)", '{{"url": "{}"}}', "GET {} HTTP/1.1"]),
)
def test_redactor_never_leaves_a_secret_in_a_url(
    secret, name, flips, host, scheme, path, before, after, form, context
):
    value = quote(secret, safe="") if form == "encoded" else secret
    pname = _case(name, flips)
    pairs = [f"{k}={v}" for k, v in before] + [f"{pname}={value}"] + [f"{k}={v}" for k, v in after]
    userinfo = ""
    query = "?" + "&".join(f"{k}={v}" for k, v in before + after) if before + after else ""
    fragment = ""
    if form in ("query", "encoded", "json"):
        query = "?" + "&".join(pairs)
    elif form == "fragment":
        fragment = "#" + "&".join(pairs)
    elif form == "userinfo":
        userinfo = f"user:{value}@"
    else:
        userinfo = f"{value}@"
    url = f"{scheme}://{userinfo}{host}/{'/'.join(path)}{query}{fragment}"
    if form == "json":
        url = json.dumps(url)[1:-1].replace("/", "\\/")
    text = context.format(url)
    shown = redact(text)
    assert value not in shown and secret not in shown, (text, shown)
    assert host in shown


@given(secret=SECRET, name=st.sampled_from(["Authorization", "x-api-key", "X-Goog-Api-Key", "api-key", "Proxy-Authorization"]),
       scheme=st.sampled_from(["", "Basic ", "Bearer "]),
       style=st.sampled_from(["line", "json", "dict", "escaped"]))  # fmt: skip
def test_redactor_never_leaves_a_secret_in_a_header(secret, name, scheme, style):
    value = scheme + (base64.b64encode(secret.encode()).decode() if scheme == "Basic " else secret)
    text = {
        "line": f"HTTP/1.1 401\r\n{name}: {value}\r\nx: y",
        "json": json.dumps({name: value, "other": "x"}),
        "dict": repr({name: value, "other": "x"}),
        "escaped": json.dumps(json.dumps({name: value})),
    }[style]
    shown = redact(text)
    secret_part = value.removeprefix(scheme)
    assert secret_part not in shown, (text, shown)


def test_an_imported_error_text_loses_its_credentials(cli, home, tmp_path):
    line = {
        "v": 1,
        "id": "01IMPORTEDSECRET",
        "ts": "2026-11-05T10:00:00.000000Z",
        "host": "h",
        "provider": "gw",
        "model": "m",
        "status": "error",
        "error_kind": "auth",
        "error_message": f"401 from https://bob:{USER_PW}@gw.example/v1?key={QUERY_KEY}",
    }
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(line) + "\n", "utf-8")
    assert cli("ledger", "import", str(path)).exit_code == 0
    assert secrets_in(all_ledger_text(home)) == []
    assert "gw.example" in all_ledger_text(home)


@given(st.text(max_size=300), SECRET)
def test_redactor_takes_any_text_and_a_known_key_never_survives(text, secret):
    from tokencli import redact as module

    assert isinstance(redact(text), str)
    module.register_secret(secret)
    try:
        shown = redact(text[: len(text) // 2] + secret + text[len(text) // 2 :])
    finally:
        module._known.discard(secret)  # keys in use are process-wide; leave none behind
    assert secret not in shown
