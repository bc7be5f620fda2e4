"""The response cache's notion of "the same request".

Opt-in (`run --cache`, or `cache = true` on a provider): an identical request
— same provider, model, system prompt, messages, max_tokens and temperature —
is answered from the ledger instead of calling the provider again. The key is
a sha256 of those fields in canonical JSON, stored on each call row.
"""

from __future__ import annotations

import hashlib
import json

from ..providers.base import ChatRequest


def request_key(provider: str, request: ChatRequest) -> str:
    canonical = json.dumps(
        {
            "provider": provider,
            "model": request.model,
            "system": request.system,
            "messages": [[m.role, m.content] for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
