"""`tokencli keys set/list/rm`: API keys in an owner-only file, never printed."""

from typing import Annotated, Any

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt
from .output import Column, emit_result, render_table

app = typer.Typer(
    name="keys",
    help="Store API keys in an owner-only file (environment variables win over it).",
    no_args_is_help=True,
)

ProviderArg = Annotated[
    str, typer.Argument(metavar="PROVIDER", help="A provider name, e.g. openai.")
]


# Keys for a provider's accounting APIs, stored beside its own: `openai-admin` (usage and
# costs, for reconcile), `openrouter-management` (the account's credits, for refill status).
ADMIN_ROLES = ("admin", "management")


@app.command("set")
def set_key(ctx: typer.Context, provider: ProviderArg) -> None:
    """Store the key for PROVIDER, read from stdin or typed at a hidden prompt.

    PROVIDER-admin and PROVIDER-management hold keys for its accounting APIs
    (openai-admin for reconcile, openrouter-management for refill status).
    """
    from ..settings.keys import KeyStore

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    base, _, role = provider.rpartition("-")
    if not (role in ADMIN_ROLES and base in settings.providers):
        settings.provider(provider)  # unknown provider → exit 6 with the list
    streams = app_ctx.streams
    if streams.stdin_isatty:
        import getpass

        key = getpass.getpass(f"API key for {provider} (hidden): ", stream=streams.stderr)
    else:
        try:
            key = streams.stdin.readline()
        except UnicodeDecodeError:
            key = "\udcff"  # not UTF-8: refused below as not ASCII
    key = key.strip()
    if not key:
        raise UsageError(
            "No key given.",
            f"Pipe it in (tokencli keys set {provider} < file) or type it at the prompt.",
        )
    from ..settings.keys import key_problem

    problem = key_problem(key)
    if problem:
        raise UsageError(f"The key {problem}.", "Paste the key alone.")
    store = KeyStore(settings.paths.keys)
    store.set(provider, key)
    app_ctx.err(f"tokencli: stored the key for {provider} in {store.path} (owner-only).")


@app.command("list")
def list_keys(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Which providers have a key and where it comes from (keys are masked)."""
    from ..redact import mask
    from ..settings.keys import KeyStore, resolve_key

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    store = KeyStore(settings.paths.keys)
    rows: list[dict[str, Any]] = []
    for name, provider in sorted(settings.providers.items()):
        found = resolve_key(provider, settings.env, store)
        if found is None and not provider.key_required and name not in store.names():
            continue  # self-hosted providers with no key: nothing to say
        rows.append(
            {
                "provider": name,
                "status": "set" if found else "missing",
                "source": found.source if found else None,
                "key": mask(found.value) if found else None,
                "env": list(provider.api_key_env),
            }
        )
    for name in sorted(store.names()):
        stored = store.get(name)
        if name not in settings.providers and name.rpartition("-")[2] in ADMIN_ROLES and stored:
            rows.append(
                {
                    "provider": name,
                    "status": "set",
                    "source": "keys file",
                    "key": mask(stored),
                    "env": [],
                }
            )
    if json_out:
        from ..results import KeyList, KeyState

        emit_result(app_ctx.streams, KeyList([KeyState(**r) for r in rows]))
        return
    render_table(
        app_ctx.streams,
        [Column("PROVIDER"), Column("KEY"), Column("SOURCE"), Column("VARIABLE")],
        [
            [r["provider"], r["key"] or "missing", r["source"] or "-", ", ".join(r["env"]) or "-"]
            for r in rows
        ],
    )


@app.command("rm")
def remove_key(ctx: typer.Context, provider: ProviderArg) -> None:
    """Remove the stored key for PROVIDER (environment variables are untouched)."""
    from ..settings.keys import KeyStore

    app_ctx = app_context(ctx)
    store = KeyStore(app_ctx.settings.paths.keys)
    if not store.remove(provider):
        raise UsageError(
            f"No stored key for {provider!r}.", "'tokencli keys list' shows the stored keys."
        )
    app_ctx.err(f"tokencli: removed the key for {provider}.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="keys")
