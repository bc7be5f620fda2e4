"""`tokencli serve`: the metering gateway; `serve add-client NAME` gives a tool its key."""

import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import Interrupted, UsageError
from .context import app_context

if TYPE_CHECKING:
    from ..settings.loader import Settings

HELP = "Run a local gateway that AI tools point their base URL at; every request is metered."

app = typer.Typer(
    name="serve",
    help=HELP
    + """

OpenAI clients use http://HOST:PORT/v1 as their base URL, Anthropic clients (and Claude
Code's ANTHROPIC_BASE_URL) http://HOST:PORT. Each request goes to the provider of the
same protocol with tokencli's key, its answer relayed as it streams, and is recorded
in the ledger like 'run' (under the client's project and tags), with budgets and rate
limits enforced. Needs the gateway extra: pip install 'tokencli[gateway]'.""",
    invoke_without_command=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="serve")


def _seconds(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|min)?\s*", text)
    if not match:
        raise UsageError(f"--drain {text!r} is not a length of time.", "Use e.g. 30s or 2min.")
    value = float(match.group(1))
    return value * 60 if match.group(2) == "min" else value


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on (not loopback: only with clients configured).",
            metavar="HOST",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on.", min=1, max=65535, metavar="PORT")
    ] = 4000,
    drain: Annotated[
        str,
        typer.Option(
            "--drain",
            help="On SIGTERM, how long streams in flight may finish (e.g. 30s, 2min).",
            metavar="TIME",
        ),
    ] = "30s",
    print_service: Annotated[
        bool,
        typer.Option(
            "--print-service",
            help="Print a service definition that keeps the gateway running (systemd user unit; launchd plist on macOS), then exit.",
        ),
    ] = False,
) -> None:
    """Run a local gateway that AI tools point their base URL at; every request is metered."""
    if ctx.invoked_subcommand is not None:
        return
    drain_seconds = _seconds(drain)
    app_ctx = app_context(ctx)
    if print_service:
        from ..gateway.service import service_definition

        app_ctx.streams.stdout.write(
            service_definition(sys.platform, sys.executable, host, port, drain)
        )
        return
    from ..gateway import require_server

    require_server()
    from ..gateway.app import Gateway, check_bind
    from ..gateway.app import serve as run_server

    settings = app_ctx.settings
    engine = app_ctx.engine()
    gateway = Gateway(settings, engine, log=app_ctx.streams.stderr)
    check_bind(gateway, host)
    clients = len(settings.gateway.clients)
    app_ctx.err(
        f"tokencli: gateway on http://{host}:{port} (OpenAI: http://{host}:{port}/v1, "
        f"Anthropic: http://{host}:{port}); "
        + (
            f"{clients} client{'s' if clients != 1 else ''} with keys"
            if clients
            else "no keys needed (loopback only)"
        )
        + f"; recording to {settings.paths.db}."
    )
    try:
        run_server(gateway, host, port, drain=drain_seconds)
    except (Interrupted, KeyboardInterrupt):
        # uvicorn hands the signal on once it has drained: stopping is the expected end.
        pass
    finally:
        engine.close()
    app_ctx.err("tokencli: gateway stopped.")


def _check_client_budget(settings: "Settings", client: str, budget: str) -> None:
    """`budget` exists and counts no other client's calls (one sentence, exit 2, if not)."""
    found = settings.budgets.get(budget)
    if found is None:
        known = ", ".join(sorted(settings.budgets)) or "none yet"
        raise UsageError(
            f"No budget is named {budget!r} (known: {known}).",
            f"Add it first, e.g. 'tokencli budget set {budget} --limit 20 --period month'.",
        )
    # Loading the config gave each budget a client lists that client's tag (or kept the
    # one its scope names): the tag is who owns it.
    owner = dict(found.scope.tags).get("client")
    if owner is not None and owner != client:
        raise UsageError(
            f"Budget {budget!r} already counts only the calls of client {owner!r}.",
            "A budget counts one client's calls: give this client a budget of its own.",
        )


@app.command("add-client")
def add_client(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The client's name, e.g. editor.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project its calls are recorded under.")
    ] = None,
    rpm: Annotated[
        int | None,
        typer.Option("--rpm", help="Requests per minute it may make.", min=1, metavar="N"),
    ] = None,
    tpm: Annotated[
        int | None, typer.Option("--tpm", help="Tokens per minute it may use.", min=1, metavar="N")
    ] = None,
    budgets: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            help="A budget (see 'tokencli budget set') that then counts and caps only this "
            "client's calls; repeatable.",
            metavar="NAME",
        ),
    ] = None,
) -> None:
    """Give a tool its own key: [gateway.clients.NAME] holds its hash; the key is printed once."""
    from ..gateway.clients import key_hash, new_key
    from ..settings.editor import set_table

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise UsageError(
            f"Client name {name!r} is not usable.", "Use letters, digits, - and _ (at most 64)."
        )
    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    key = new_key()
    table: dict[str, object] = {"key_sha256": key_hash(key)}
    existing = settings.gateway.clients.get(name)
    if existing is not None:
        # A new key for a known client: its other settings stay.
        for field in ("project", "user", "rpm", "tpm"):
            value = getattr(existing, field)
            if value is not None:
                table[field] = value
        if existing.tags:
            table["tags"] = dict(existing.tags)
        if existing.models:
            table["models"] = list(existing.models)
    for field, value in (("project", project), ("rpm", rpm), ("tpm", tpm)):
        if value is not None:
            table[field] = value
    own_budgets = list(existing.budgets) if existing is not None else []
    for budget in budgets or []:
        _check_client_budget(settings, name, budget)
        if budget not in own_budgets:
            own_budgets.append(budget)
    if own_budgets:
        table["budgets"] = own_budgets
    set_table(settings.paths.config, ("gateway", "clients", name), table)
    app_ctx.streams.stdout.write(key + "\n")
    app_ctx.err(
        f"tokencli: {'replaced the key of' if existing else 'added'} gateway client {name!r} in "
        f"{settings.paths.config}; the key above is shown only once (the config keeps its hash)."
    )
