"""How a recorded call looks: the JSON record scripts read, and the usage line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..money import decimal_str, format_money
from .output import duration

if TYPE_CHECKING:
    from ..ledger import Call


def call_json(call: Call, *, text: str | None = None, with_text: bool = False) -> dict[str, Any]:
    """The stable JSON shape of a call (`run --json`, `logs --json`)."""
    data: dict[str, Any] = {
        "id": call.id,
        "ts": call.ts,
        "provider": call.provider,
        "model": call.model,
        "response_model": call.response_model,
        "alias": call.alias,
        "project": call.project,
        "tags": call.tags,
        "status": call.status,
        "usage": call.usage.as_dict(),
        "cost": decimal_str(call.cost),
        "currency": call.currency,
        "price_source": call.price_source,
        "duration_ms": call.duration_ms,
        "ttft_ms": call.ttft_ms,
        "finish_reason": call.finish_reason,
        "request_id": call.request_id,
        "host": call.host,
    }
    if call.prompt_name:
        data["prompt"] = {"name": call.prompt_name, "version": call.prompt_version}
    if call.status not in ("ok", "cached"):
        data["error"] = {"kind": call.error_kind, "message": call.error_message}
    if call.extra:
        data["extra"] = call.extra
    if text is not None:
        data["text"] = text
    elif with_text:
        data["system"] = call.system_text
        data["prompt_text"] = call.prompt_text
        data["text"] = call.response_text
    return data


def usage_line(call: Call) -> str:
    u = call.usage
    parts = [f"{u.input_tokens:,} in"]
    if u.cached_input_tokens:
        parts[-1] += f" ({u.cached_input_tokens:,} cached)"
    out = f"{u.output_tokens:,} out"
    if u.reasoning_tokens:
        out += f" ({u.reasoning_tokens:,} reasoning)"
    parts.append(out)
    parts.append(format_money(call.cost, call.currency))
    parts.append(duration(call.duration_ms))
    estimated = " (estimated)" if u.source == "estimated" else ""
    status = "" if call.status == "ok" else f" [{call.status}]"
    return f"tokencli: {call.provider}:{call.model} · {' · '.join(parts)}{estimated}{status} · {call.id}"
