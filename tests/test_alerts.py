"""Alerts: each channel's wire format on a loopback server, signatures, delivery failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeServer, Pause, Reply, json_reply
from tokencli.alerts import SCHEMA, Alert, budget_threshold
from tokencli.alerts.delivery import send
from tokencli.alerts.formats import dingtalk_sign, feishu_sign, mask_url, render
from tokencli.settings.model import AlertChannel

ALERT = Alert(
    kind="budget_threshold",
    key="budget:monthly:80:2026-12",
    title="Budget monthly: 80% used",
    message="40.10 of 50.00 USD spent this month (2026-12).",
    fields={"budget": "monthly", "spent": "40.10", "limit": "50.00", "unit": "USD"},
    occurred_at="2026-12-04T20:00:00Z",
)
TEXT = "Budget monthly: 80% used\n40.10 of 50.00 USD spent this month (2026-12)."


def hook(
    server: FakeServer, fmt: str, path: str = "/hook/TOKEN123456", **kw: object
) -> AlertChannel:
    return AlertChannel(type="webhook", name=fmt, url=server.url + path, format=fmt, **kw)  # type: ignore[arg-type]


def test_json_payload_is_versioned(server: FakeServer) -> None:
    server.queue(Reply(204))
    assert send(hook(server, "json"), ALERT, delivery_id="d1") is None
    got = server.requests[0]
    assert got.method == "POST" and got.path == "/hook/TOKEN123456"
    assert got.headers["content-type"].startswith("application/json")
    assert got.json == {
        "schema": SCHEMA,
        "event": "budget_threshold",
        "status": "firing",
        "id": "d1",
        "dedupe_key": "budget:monthly:80:2026-12",
        "occurred_at": "2026-12-04T20:00:00Z",
        "severity": "warning",
        "title": ALERT.title,
        "message": ALERT.message,
        "fields": {"budget": "monthly", "spent": "40.10", "limit": "50.00", "unit": "USD"},
    }
    assert Alert.from_payload(got.json) == ALERT


def test_slack_shape(server: FakeServer) -> None:
    server.queue(Reply(200, {"content-type": "text/plain"}, b"ok"))
    assert send(hook(server, "slack"), ALERT) is None
    body = server.requests[0].json
    assert body["text"] == TEXT
    assert body["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{ALERT.title}*\n{ALERT.message}"}}
    ]


def test_slack_error_string_is_a_failure(server: FakeServer) -> None:
    server.queue(Reply(404, {"content-type": "text/plain"}, b"no_service"))
    assert send(hook(server, "slack"), ALERT) == "HTTP 404: no_service"


def test_discord_shape_and_limit(server: FakeServer) -> None:
    server.queue(Reply(204), Reply(204))
    assert send(hook(server, "discord"), ALERT) is None
    assert server.requests[0].json == {"content": TEXT, "allowed_mentions": {"parse": []}}
    long = Alert(kind="test", key="k", title="t", message="x" * 5000)
    assert send(hook(server, "discord"), long) is None
    assert len(server.requests[1].json["content"]) == 2000


def test_feishu_unsigned_and_signed(server: FakeServer) -> None:
    server.queue(json_reply({"code": 0, "msg": "success", "data": {}}))
    assert send(hook(server, "feishu"), ALERT) is None
    assert server.requests[0].json == {"msg_type": "text", "content": {"text": TEXT}}

    server.queue(json_reply({"code": 0, "msg": "success", "data": {}}))
    before = int(time.time())
    assert send(hook(server, "feishu", secret="feishu-secret-1"), ALERT) is None
    body = server.requests[1].json
    assert set(body) == {"msg_type", "content", "timestamp", "sign"}
    assert isinstance(body["timestamp"], str) and before <= int(body["timestamp"]) <= time.time()
    # Recomputed as Feishu documents it: the key is timestamp + "\n" + secret, the message empty.
    key = f"{body['timestamp']}\nfeishu-secret-1".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected == feishu_sign(body["timestamp"], "feishu-secret-1")


def test_feishu_http_200_with_a_code_is_a_failure(server: FakeServer) -> None:
    server.queue(json_reply({"code": 19021, "msg": "sign match fail"}))
    assert (
        send(hook(server, "feishu", secret="s3cret-value"), ALERT) == "code 19021: sign match fail"
    )


def test_dingtalk_signed_in_the_query(server: FakeServer) -> None:
    server.queue(json_reply({"errcode": 0, "errmsg": "ok"}))
    channel = hook(
        server, "dingtalk", path="/robot/send?access_token=TOKEN123456", secret="SECabcdef"
    )
    before = int(time.time() * 1000)
    assert send(channel, ALERT) is None
    got = server.requests[0]
    assert got.json == {"msgtype": "text", "text": {"content": TEXT}}
    parts = urlsplit(got.path)
    assert parts.path == "/robot/send"
    raw = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    assert set(raw) == {"access_token", "timestamp", "sign"}
    assert raw["access_token"] == "TOKEN123456"
    assert before <= int(raw["timestamp"]) <= time.time() * 1000  # milliseconds
    # Recomputed as DingTalk documents it: key = secret, message = timestamp + "\n" + secret.
    digest = hmac.new(b"SECabcdef", f"{raw['timestamp']}\nSECabcdef".encode(), hashlib.sha256)
    assert unquote(raw["sign"]) == base64.b64encode(digest.digest()).decode()
    assert raw["sign"] == dingtalk_sign(raw["timestamp"], "SECabcdef")
    assert "/" not in raw["sign"] and "+" not in raw["sign"] and "=" not in raw["sign"]
    assert parse_qs(parts.query)["sign"][0] == base64.b64encode(digest.digest()).decode()


def test_dingtalk_errcode_is_a_failure(server: FakeServer) -> None:
    server.queue(json_reply({"errcode": 310000, "errmsg": "sign not match"}))
    channel = hook(server, "dingtalk", path="/robot/send?access_token=TOKEN123456")
    assert send(channel, ALERT) == "errcode 310000: sign not match"


def test_wecom_shape_and_byte_limit(server: FakeServer) -> None:
    server.queue(
        json_reply({"errcode": 0, "errmsg": "ok"}),
        json_reply({"errcode": 45009, "errmsg": "api freq out of limit"}),
    )
    channel = hook(server, "wecom", path="/cgi-bin/webhook/send?key=KEY1234567")
    assert send(channel, ALERT) is None
    assert server.requests[0].json == {"msgtype": "text", "text": {"content": TEXT}}
    long = Alert(kind="test", key="k", title="预算", message="超" * 2000)
    assert send(channel, long) == "errcode 45009: api freq out of limit"
    assert len(server.requests[1].json["text"]["content"].encode()) <= 2048


def test_ntfy_plain_body_with_headers(server: FakeServer) -> None:
    server.queue(json_reply({"id": "x", "event": "message"}))
    assert send(hook(server, "ntfy", path="/tokencli-alerts"), ALERT) is None
    got = server.requests[0]
    assert got.body.decode() == ALERT.message
    assert got.headers["title"] == ALERT.title
    assert got.headers["priority"] == "4"
    assert got.headers["content-type"].startswith("text/plain")


def test_a_hanging_webhook_times_out(server: FakeServer) -> None:
    server.queue(Reply(200, chunks=[Pause(3), b"ok"]))
    channel = hook(server, "slack", timeout=0.3)
    started = time.monotonic()
    problem = send(channel, ALERT)
    assert time.monotonic() - started < 2
    assert problem == "no answer within 0.3 s"


def test_failures_never_show_the_url_or_secret() -> None:
    # Nothing listens on port 9: a connection error whose text would carry the URL.
    channel = AlertChannel(
        type="webhook",
        name="x",
        url="http://127.0.0.1:9/hooks/SECRETTOKEN99?key=KEYVALUE99",
        format="dingtalk",
        secret="SECsigning99",
        timeout=1,
    )
    problem = send(channel, ALERT)
    assert problem
    for secret in ("SECRETTOKEN99", "KEYVALUE99", "SECsigning99"):
        assert secret not in problem
    assert mask_url(channel.url or "") == "http://127.0.0.1:9/…"


def test_command_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    channel = AlertChannel(type="command", name="c", command=(sys.executable, "-c", script))
    assert send(channel, ALERT, delivery_id="d2") is None
    assert json.loads(out.read_text()) == ALERT.payload("d2")


def test_command_failure_and_timeout() -> None:
    failing = AlertChannel(
        type="command",
        name="c",
        command=(sys.executable, "-c", "import sys; sys.exit('pager down')"),
    )
    assert send(failing, ALERT) == f"{sys.executable} exited 1: pager down"
    hanging = AlertChannel(
        type="command",
        name="c",
        command=(sys.executable, "-c", "import time; time.sleep(5)"),
        timeout=0.3,
    )
    started = time.monotonic()
    assert send(hanging, ALERT) == f"{sys.executable} did not finish within 0.3 s"
    assert time.monotonic() - started < 3
    missing = AlertChannel(type="command", name="c", command=("/nonexistent/page-me",))
    assert "cannot be run" in (send(missing, ALERT) or "")


def test_stderr_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert send(AlertChannel(type="stderr", name="stderr"), ALERT) is None
    assert capsys.readouterr().err == f"tokencli alert: {ALERT.title}: {ALERT.message}\n"


def test_desktop_is_skipped_where_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert send(AlertChannel(type="desktop", name="d"), ALERT) is None


def test_desktop_command_per_system() -> None:
    from tokencli.alerts.delivery import desktop_command

    def only(*names: str):
        return lambda name: f"/usr/bin/{name}" if name in names else None

    assert desktop_command(ALERT, "linux", only("notify-send")) == (
        ["notify-send", "--app-name=tokencli", ALERT.title, ALERT.message],
        {},
    )
    argv, env = desktop_command(ALERT, "darwin", only("osascript")) or ([], {})
    assert argv[:2] == ["osascript", "-e"] and env == {}
    assert desktop_command(ALERT, "win32", only("notify-send")) is None  # no PowerShell 5.1
    assert desktop_command(ALERT, "linux", only()) is None


def test_windows_toast_carries_the_texts_outside_the_script() -> None:
    """A title or message full of quotes, `$(...)` and markup reaches the toast as text:
    it travels in the environment and becomes an XML text node, never script."""
    import base64
    import dataclasses

    from tokencli.alerts.delivery import desktop_command

    hostile = dataclasses.replace(ALERT, title="'; Remove-Item C:\\ #", message="$(calc) <b>&amp;")
    command = desktop_command(hostile, "win32", lambda name: "C:\\Windows\\powershell.exe")
    assert command is not None
    argv, env = command
    assert argv[:4] == [
        "C:\\Windows\\powershell.exe",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    script = base64.b64decode(argv[4]).decode("utf-16-le")
    assert (
        "ToastNotificationManager" in script
        and "CreateTextNode($env:TOKENCLI_ALERT_TITLE)" in script
    )
    assert hostile.title not in script and hostile.message not in script
    assert env == {"TOKENCLI_ALERT_TITLE": hostile.title, "TOKENCLI_ALERT_MESSAGE": hostile.message}


# ------------------------------------------------------------------ properties (Hypothesis)


TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(title=TEXTS, message=TEXTS, secret=st.text(min_size=1, max_size=40))
def test_every_format_renders_valid_bounded_messages(title: str, message: str, secret: str) -> None:
    alert = Alert(kind="test", key="k", title=title, message=message)
    now = 1_767_000_000.5
    for fmt in ("json", "slack", "discord", "feishu", "dingtalk", "wecom"):
        request = render(
            fmt, "https://h.example/hook?access_token=T", alert, secret=secret, now=now
        )
        body = json.loads(request.body)
        if fmt == "json":
            assert Alert.from_payload(body) == alert
        if fmt == "discord":
            assert len(body["content"]) <= 2000
        if fmt == "wecom":
            assert len(body["text"]["content"].encode()) <= 2048
        if fmt == "feishu":
            assert body["timestamp"] == "1767000000"
            assert body["sign"] == feishu_sign("1767000000", secret)
        if fmt == "dingtalk":
            query = parse_qs(urlsplit(request.url).query)
            assert query["timestamp"] == ["1767000000500"]
            digest = hmac.new(secret.encode(), f"1767000000500\n{secret}".encode(), hashlib.sha256)
            assert query["sign"] == [base64.b64encode(digest.digest()).decode()]
            assert query["access_token"] == ["T"]
    ntfy = render("ntfy", "https://ntfy.example/t", alert, now=now)
    assert len(ntfy.body) <= 4096


def test_budget_threshold_alert_keys_once_per_budget_threshold_and_window() -> None:
    alert = budget_threshold(
        "monthly", 80, "2026-12", spent="40.10", limit="50.00", unit="USD", period="month"
    )
    assert alert.key == "budget:monthly:80:2026-12" and alert.level == "warning"
    assert alert.title == "Budget monthly: 80% used"
    assert alert.message == "40.10 of 50.00 USD spent this month (2026-12)."
    over = budget_threshold("m", 100, "2026-12-04", spent="5", limit="5", unit="USD", period="day")
    assert over.level == "critical" and over.key == "budget:m:100:2026-12-04"
