"""A request's `model` → the tokencli models it goes to.

In order: a bare name mapped in `[gateway.models]`; a tokencli alias (which
may name a fallback chain) or `PROVIDER:MODEL` with a known provider; else
the name as the door's own provider knows it (`claude-sonnet-4-5` on the
Anthropic door → `anthropic`, `gpt-4o-mini` on the OpenAI door → `openai`),
so clients that send vendor model names work unchanged.
"""

from __future__ import annotations

from ..calls.resolve import ResolvedModel, resolve_chain
from ..settings.loader import Settings


def route(settings: Settings, door_provider: str, model: str) -> list[ResolvedModel]:
    name = settings.gateway.models.get(model, model)
    provider, sep, rest = name.partition(":")
    if name in settings.aliases or (sep and rest and provider in settings.providers):
        return resolve_chain(settings, name)
    return [ResolvedModel(settings.provider(door_provider), name)]
