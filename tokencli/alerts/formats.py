"""Each webhook's wire format, exactly as its vendor documents it.

See ../shared/reference/alerts.md: Slack `{"text", "blocks"}`; Discord
`{"content"}` (≤ 2000 chars, mentions off); Feishu/Lark `msg_type: text`, signed
in the body; DingTalk `msgtype: text`, signed in the URL query; WeCom
`msgtype: text` (≤ 2048 bytes); ntfy a plain-text body with Title/Priority/Tags
headers; `json` the versioned tokencli payload. `check_reply` reads each
vendor's success signal: HTTP 200 is not success for Feishu, DingTalk or WeCom.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from . import Alert

DISCORD_LIMIT = 2000
WECOM_LIMIT = 2048  # bytes of UTF-8
SLACK_LIMIT = 40_000
NTFY_PRIORITY = {"info": "3", "warning": "4", "critical": "5"}


class WebhookRequest(NamedTuple):
    url: str
    headers: dict[str, str]
    body: bytes


def feishu_sign(timestamp: str, secret: str) -> str:
    """Feishu/Lark: Base64(HMAC-SHA256(key = timestamp + "\\n" + secret, message = b""))."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(timestamp: str, secret: str) -> str:
    """DingTalk: URL-encode(Base64(HMAC-SHA256(key = secret, message = timestamp + "\\n" + secret)))."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return quote(base64.b64encode(digest).decode(), safe="")


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()


def _clip_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


def render(
    fmt: str,
    url: str,
    alert: Alert,
    *,
    secret: str | None = None,
    now: float,
    delivery_id: str = "",
) -> WebhookRequest:
    """The request that carries `alert` to a webhook of format `fmt`; `now` in Unix seconds."""
    json_headers = {"content-type": "application/json; charset=utf-8"}
    text = alert.text()
    if fmt == "json":
        return WebhookRequest(url, json_headers, _json(alert.payload(delivery_id)))
    if fmt == "slack":
        block_text = f"*{alert.title}*\n{alert.message}" if alert.message else f"*{alert.title}*"
        body: dict[str, Any] = {
            "text": _clip_chars(text, SLACK_LIMIT),
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _clip_chars(block_text, 3000)},
                }
            ],
        }
        return WebhookRequest(url, json_headers, _json(body))
    if fmt == "discord":
        discord: dict[str, Any] = {
            "content": _clip_chars(text, DISCORD_LIMIT),
            "allowed_mentions": {"parse": []},
        }
        return WebhookRequest(url, json_headers, _json(discord))
    if fmt == "feishu":
        feishu: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if secret:
            timestamp = str(int(now))  # seconds
            feishu["timestamp"] = timestamp
            feishu["sign"] = feishu_sign(timestamp, secret)
        return WebhookRequest(url, json_headers, _json(feishu))
    if fmt == "dingtalk":
        if secret:
            timestamp = str(int(now * 1000))  # milliseconds
            sep = "&" if urlsplit(url).query else "?"
            url = f"{url}{sep}timestamp={timestamp}&sign={dingtalk_sign(timestamp, secret)}"
        ding: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
        return WebhookRequest(url, json_headers, _json(ding))
    if fmt == "wecom":
        wecom: dict[str, Any] = {
            "msgtype": "text",
            "text": {"content": _clip_bytes(text, WECOM_LIMIT)},
        }
        return WebhookRequest(url, json_headers, _json(wecom))
    if fmt == "ntfy":
        headers = {
            "content-type": "text/plain; charset=utf-8",
            "title": alert.title,
            "priority": NTFY_PRIORITY[alert.level],
            "tags": "warning" if alert.level != "info" else "information_source",
        }
        return WebhookRequest(
            url, headers, _clip_bytes(alert.message or alert.title, 4096).encode()
        )
    raise ValueError(f"unknown webhook format {fmt!r}")


def check_reply(fmt: str, status: int, body: bytes) -> str | None:
    """None when the vendor says delivered, else why not (short, no URL)."""
    snippet = body[:200].decode(errors="replace").strip()
    if not 200 <= status < 300:
        return f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if fmt not in ("feishu", "dingtalk", "wecom"):
        return None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return f"HTTP {status} with a reply that is not JSON"
    field = "code" if fmt == "feishu" else "errcode"
    if not isinstance(data, dict) or field not in data:
        return f"HTTP {status} without {field}"
    if data[field] != 0:
        message = data.get("msg") if fmt == "feishu" else data.get("errmsg")
        return f"{field} {data[field]}" + (f": {message}" if message else "")
    return None


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/…`: the host, never the path or query that carry the token."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/…"


def url_secrets(url: str) -> list[str]:
    """The parts of a webhook URL that may be a credential: path segments and query values."""
    parts = urlsplit(url)
    found = [s for s in parts.path.split("/") if len(s) >= 6]
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        if len(value) >= 6:
            found.append(value)
    if parts.password:
        found.append(parts.password)
    return found
