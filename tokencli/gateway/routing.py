"""A request's `model` → the tokencli models it goes to.

In order: a bare name mapped in `[gateway.models]`; a tokencli alias (which
may name a fallback chain) or `PROVIDER:MODEL` (an unknown PROVIDER is refused
with 404, listing how to see the known names); else
the name as the door's own provider knows it (`claude-sonnet-4-5` on the
Anthropic door → `anthropic`, `gpt-4o-mini` on the OpenAI door → `openai`),
so clients that send vendor model names work unchanged.
"""

from __future__ import annotations

from ..calls.resolve import ResolvedModel, resolve_chain
from ..settings.loader import Settings


def route(settings: Settings, door_provider: str, model: str) -> list[ResolvedModel]:
    """The models `model` goes to; a `ConfigError` (the door answers 404) when it names a
    provider tokencli does not have: `PROVIDER:MODEL` with an unknown PROVIDER is a
    mistake, not a vendor's name, except OpenAI's fine-tunes (`ft:BASE:ORG::ID`)."""
    mapped = settings.gateway.models.get(model)
    if mapped is not None:
        return resolve_chain(settings, mapped)
    if model in settings.aliases:
        return resolve_chain(settings, model)
    provider, sep, _ = model.partition(":")
    if sep and provider != "ft":
        return resolve_chain(settings, model)
    return [ResolvedModel(settings.provider(door_provider), model)]
