"""`tokencli serve`: a metering gateway other AI tools point their base URL at.

Each request that arrives on the OpenAI or Anthropic door is forwarded to the
provider of the same protocol, its response relayed byte for byte (each SSE
event as it arrives), and recorded in the ledger exactly as `run` records a
call: guards and budgets before the pending row, the finished row after
(`Engine.open_call` / `Engine.complete`), written off the event loop.

- `protocols`: the two doors' error shapes and what a request says (model,
  text for estimates, stream flag);
- `routing`: a request's model → the tokencli model it goes to;
- `clients`: keys and per-client rate limits;
- `relay`: the upstream request and the response relayed to the client,
  with usage read as it passes (the providers' own parsers);
- `metrics`: Prometheus counters;
- `app`: the Starlette app and its routes; `serve` runs it on uvicorn.

uvicorn and starlette are the `gateway` extra; nothing here is imported
until `tokencli serve` runs.
"""

from __future__ import annotations

from ..errors import ConfigError

INSTALL_HINT = "Install the gateway extra: pip install 'tokencli[gateway]'."


def require_server() -> None:
    """uvicorn and starlette, or a ConfigError saying how to install them."""
    import importlib.util

    missing = [m for m in ("uvicorn", "starlette") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"tokencli serve needs {' and '.join(missing)}, which "
            + ("is" if len(missing) == 1 else "are")
            + " not installed.",
            INSTALL_HINT,
        )
