"""`tokencli serve --print-service`: a definition that keeps the gateway running."""

from __future__ import annotations

import shlex
from xml.sax.saxutils import escape


def service_definition(platform: str, python: str, host: str, port: int, drain: str) -> str:
    """A systemd user unit, or on macOS a launchd agent plist."""
    args = [
        python,
        "-m",
        "tokencli",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--drain",
        drain,
    ]
    if platform == "darwin":
        items = "\n".join(f"    <string>{escape(a)}</string>" for a in args)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Save as ~/Library/LaunchAgents/dev.tokencli.serve.plist, then:
     launchctl load ~/Library/LaunchAgents/dev.tokencli.serve.plist -->
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>dev.tokencli.serve</string>
  <key>ProgramArguments</key>
  <array>
{items}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
</dict>
</plist>
"""
    command = " ".join(shlex.quote(a) for a in args)
    return f"""# Save as ~/.config/systemd/user/tokencli-serve.service, then:
#   systemctl --user daemon-reload && systemctl --user enable --now tokencli-serve
[Unit]
Description=tokencli metering gateway
After=network.target

[Service]
ExecStart={command}
Restart=on-failure
# SIGTERM lets streams in flight finish (--drain), then records the rest as interrupted.
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=default.target
"""
