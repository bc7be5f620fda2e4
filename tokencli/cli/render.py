"""How a recorded call looks on stderr: the usage line (its JSON record is `results.call_record`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..money import format_money
from .output import duration

if TYPE_CHECKING:
    from ..ledger import Call


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
