"""Send one alert over one channel; say what went wrong, never the URL's secret parts.

`send(channel, alert, ...)` returns None when delivered, else a short reason.
It never raises for a delivery problem: a channel that is down, slow or
misconfigured is the channel's problem, not the call's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

from ..redact import redact
from ..settings.model import AlertChannel
from . import Alert
from .formats import check_reply, mask_url, render, url_secrets


def describe(channel: AlertChannel) -> str:
    """What the channel is, safe to print: `webhook feishu https://open.feishu.cn/…`."""
    if channel.type == "webhook" and channel.url:
        return f"webhook {channel.format} {mask_url(channel.url)}"
    if channel.type == "command" and channel.command:
        return f"command {channel.command[0]}"
    return channel.type


def scrub(channel: AlertChannel, text: str) -> str:
    """`text` without the channel's URL, its token parts or its secret."""
    extra: list[str] = []
    if channel.url:
        extra += [channel.url, *url_secrets(channel.url)]
    if channel.secret:
        extra.append(channel.secret)
    return redact(text, extra)


def send(
    channel: AlertChannel,
    alert: Alert,
    *,
    delivery_id: str = "",
    timeout: float | None = None,
    stderr: IO[str] | None = None,
) -> str | None:
    """Deliver `alert`; None on success, else why not (already scrubbed)."""
    limit = min(channel.timeout, timeout) if timeout is not None else channel.timeout
    limit = max(limit, 0.05)
    try:
        if channel.type == "stderr":
            from ..safetext import visible

            line = visible(f"tokencli alert: {alert.title}: {alert.message}")
            print(line, file=stderr or sys.stderr)
            return None
        if channel.type == "webhook":
            return _webhook(channel, alert, delivery_id, limit)
        if channel.type == "command":
            return _command(channel, alert, delivery_id, limit)
        if channel.type == "desktop":
            return _desktop(alert, limit)
        return f"unknown channel type {channel.type!r}"
    except Exception as exc:  # a channel never fails the caller
        return scrub(channel, f"{type(exc).__name__}: {exc}")


def _webhook(channel: AlertChannel, alert: Alert, delivery_id: str, limit: float) -> str | None:
    import httpx

    assert channel.url
    request = render(
        channel.format,
        channel.url,
        alert,
        secret=channel.secret,
        now=time.time(),
        delivery_id=delivery_id,
    )
    headers = {k: v.encode() if not v.isascii() else v for k, v in request.headers.items()}
    try:
        with httpx.Client(timeout=limit, follow_redirects=False, trust_env=False) as client:
            reply = client.post(request.url, content=request.body, headers=headers)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        return f"no answer within {limit:g} s"
    except httpx.HTTPError as exc:
        return scrub(channel, f"{type(exc).__name__}: {exc}")
    problem = check_reply(channel.format, reply.status_code, reply.content)
    return scrub(channel, problem) if problem else None


def _command(channel: AlertChannel, alert: Alert, delivery_id: str, limit: float) -> str | None:
    data = json.dumps(alert.payload(delivery_id), ensure_ascii=False, sort_keys=True)
    try:
        done = subprocess.run(
            list(channel.command),
            input=data.encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{channel.command[0]} did not finish within {limit:g} s"
    except OSError as exc:
        return f"{channel.command[0]} cannot be run: {exc.strerror or exc}"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return scrub(
            channel,
            f"{channel.command[0]} exited {done.returncode}"
            + (f": {tail[0][:200]}" if tail[0] else ""),
        )
    return None


def _desktop(alert: Alert, limit: float) -> str | None:
    """A desktop notification where the system has a way to show one; elsewhere nothing."""
    command = desktop_command(alert, sys.platform, shutil.which)
    if command is None:
        return None
    argv, env = command
    # Without a desktop session (cron, SSH, containers, services) these fail or hang:
    # skipped, as where they are absent (alerts.md §10); other channels carry the alert.
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            argv, capture_output=True, timeout=limit, check=False,
            env={**os.environ, **env} if env else None,
        )  # fmt: skip
    return None


# Windows PowerShell 5.1 shows a toast through WinRT (PowerShell 7 cannot: .NET 5 dropped
# the WinRT projection). The texts arrive in environment variables and become XML text
# nodes, so nothing in an alert is ever parsed as script or markup. The app id is
# PowerShell's own, which every Windows 10/11 desktop has registered.
_TOAST_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$null = [Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]
$null = [Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime]
$xml = [Windows.Data.Xml.Dom.XmlDocument]::new()
$xml.LoadXml('<toast><visual><binding template="ToastGeneric"><text/><text/></binding></visual></toast>')
$texts = $xml.GetElementsByTagName('text')
$null = $texts.Item(0).AppendChild($xml.CreateTextNode($env:TOKENCLI_ALERT_TITLE))
$null = $texts.Item(1).AppendChild($xml.CreateTextNode($env:TOKENCLI_ALERT_MESSAGE))
$app = '{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe'
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($app).Show(
    [Windows.UI.Notifications.ToastNotification]::new($xml))
"""


def desktop_command(
    alert: Alert, platform: str, which: Callable[[str], str | None]
) -> tuple[list[str], dict[str, str]] | None:
    """The program (and extra environment) that shows `alert` on this desktop, or None."""
    if platform == "win32":
        powershell = which("powershell")  # Windows PowerShell 5.1, not pwsh
        if powershell is None:
            return None
        script = base64.b64encode(_TOAST_SCRIPT.encode("utf-16-le")).decode("ascii")
        argv = [powershell, "-NoProfile", "-NonInteractive", "-EncodedCommand", script]
        return argv, {"TOKENCLI_ALERT_TITLE": alert.title, "TOKENCLI_ALERT_MESSAGE": alert.message}
    if which("notify-send"):
        return ["notify-send", "--app-name=tokencli", alert.title, alert.message], {}
    if which("osascript"):
        script = f"display notification {_applescript(alert.message)} with title {_applescript(alert.title)}"
        return ["osascript", "-e", script], {}
    return None


def _applescript(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
