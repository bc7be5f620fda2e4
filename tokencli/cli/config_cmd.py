"""`tokencli config init/path/show/validate`: set-up, and where each value came from."""

from enum import StrEnum
from typing import Annotated, Any

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt
from .output import Column, emit_result, render_table

app = typer.Typer(
    name="config",
    help="Set up tokencli and see where each setting comes from.",
    no_args_is_help=True,
)


class PathName(StrEnum):
    config = "config"
    ledger = "ledger"
    keys = "keys"
    cache = "cache"


@app.command("path")
def path(
    ctx: typer.Context,
    which: Annotated[
        PathName | None,
        typer.Argument(
            metavar="[config|ledger|keys|cache]",
            help='Print only this path, e.g. for: datasette "$(tokencli config path ledger)".',
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the config, ledger, keys and cache paths, each with its source."""
    app_ctx = app_context(ctx)
    paths = app_ctx.settings.paths
    entries = [
        ("config", str(paths.config), paths.config_source),
        ("ledger", str(paths.db), paths.db_source),
        ("keys", str(paths.keys), "beside the default config"),
        ("cache", str(paths.cache_dir), "derived data, safe to delete"),
    ]
    if which is not None and not json_out:
        app_ctx.streams.stdout.write(dict((n, p) for n, p, _ in entries)[which.value] + "\n")
        return
    if which is not None:
        entries = [e for e in entries if e[0] == which.value]
    if json_out:
        from ..results import PathsResult

        emit_result(app_ctx.streams, PathsResult(entries))
        return
    render_table(
        app_ctx.streams,
        [Column("WHAT"), Column("PATH"), Column("SOURCE")],
        [list(e) for e in entries],
    )


@app.command("init")
def init(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing config file.")
    ] = False,
) -> None:
    """Write the documented sample config to the config path."""
    from importlib.resources import files

    app_ctx = app_context(ctx)
    target = app_ctx.settings.paths.config
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists.", "Edit it, or pass --force to replace it with the sample."
        )
    sample = files("tokencli").joinpath("data/sample-config.toml").read_text("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    from ..outpath import write_output

    write_output(target, sample)  # a symlinked config keeps its link
    app_ctx.err(f"tokencli: wrote {target}")


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Check the config file; exit 6 with the line to fix if it is invalid."""
    app_ctx = app_context(ctx)
    settings = app_ctx.settings  # loading validates; errors exit 6
    where = settings.paths.config
    if not settings.config_exists:
        app_ctx.err(
            f"tokencli: no config file at {where}; the defaults apply ('tokencli config init' writes one)."
        )
        return
    app_ctx.err(
        f"tokencli: {where} is valid ({len(settings.aliases)} aliases, "
        f"{sum(1 for p in settings.providers.values() if p.sources)} providers configured, "
        f"{len(settings.prices)} price overrides, {len(settings.budgets)} budgets)."
    )


@app.command("show")
def show(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print every effective setting with its source (default, preset, file:line, env, flag)."""
    from ..pricing.cny import own_list
    from ..pricing.cost import price_list
    from ..settings.keys import KeyStore, resolve_key

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    rows: list[tuple[str, Any, str]] = []
    paths = settings.paths
    rows.append(("paths.config", str(paths.config), paths.config_source))
    rows.append(("paths.ledger", str(paths.db), paths.db_source))
    for key in ("model", "project", "store_text", "max_tokens", "temperature"):
        value = getattr(settings.defaults, key)
        rows.append((f"defaults.{key}", value, settings.sources.get(f"defaults.{key}", "default")))
    for alias, targets in sorted(settings.aliases.items()):
        rows.append(
            (
                f"aliases.{alias}",
                list(targets) if len(targets) > 1 else targets[0],
                settings.sources[f"aliases.{alias}"],
            )
        )
    store = KeyStore(paths.keys)
    own_list_found = own_list(paths.config_dir)
    for name, provider in sorted(settings.providers.items()):
        origin = "preset" if provider.builtin else "config"
        for key in ("type", "base_url"):
            value = getattr(provider, key)
            if value is not None:
                rows.append((f"providers.{name}.{key}", value, provider.sources.get(key, origin)))
        for key in sorted(provider.sources):
            if key not in ("type", "base_url"):
                value = getattr(provider, key, None)
                if value is None:
                    value = provider.options.get(key)
                rows.append((f"providers.{name}.{key}", _plain(value), provider.sources[key]))
        rows.append(
            (
                f"providers.{name}.price_list",
                price_list(provider, own_list_found),
                provider.sources.get("currency", provider.sources.get("prices_from", origin)),
            )
        )
        try:
            found = resolve_key(provider, settings.env, store)
        except Exception:
            found = None
        if found:
            key_state, key_source = "set", found.source
        elif provider.key_required:
            key_state, key_source = (
                "missing",
                f"set {provider.api_key_env[0]}" if provider.api_key_env else "keys set",
            )
        else:
            key_state, key_source = "not needed", origin
        rows.append((f"providers.{name}.key", key_state, key_source))
    for ref, price in sorted(settings.prices.items()):
        rows.append(
            (
                f'prices."{ref}"',
                f"input {price.input}, output {price.output}"
                + (f", cached {price.cached_input}" if price.cached_input is not None else "")
                + f" {price.currency}/1M",
                price.source.removeprefix("config "),
            )
        )
    rows.append(
        (
            "currency.report",
            settings.currencies.report,
            settings.sources.get("currency.report", "default"),
        )
    )
    for code, rate in sorted(settings.currencies.rates.items()):
        rows.append(
            (
                f"currency.rates.{code}",
                rate,
                settings.sources.get(f"currency.rates.{code}", "config"),
            )
        )
    for name, budget in sorted(settings.budgets.items()):
        scope = ", ".join(f"{k}={v}" for k, v in budget.scope.describe().items()) or "all calls"
        rows.append(
            (
                f"budgets.{name}",
                (
                    f"{budget.tokens:,} tokens"
                    if budget.tokens is not None
                    else f"{_plain(budget.amount)} {budget.currency}"
                )
                + f" a {budget.period}, {scope}"
                + (", blocking" if budget.block else ""),
                budget.source,
            )
        )

    # A base_url (or any value) may carry a credential: `user:password@`, `?key=…`.
    rows = [(k, _scrubbed(v), s) for k, v, s in rows]
    if json_out:
        from ..results import Setting, SettingList

        emit_result(app_ctx.streams, SettingList([Setting(k, _plain(v), s) for k, v, s in rows]))
        return
    render_table(
        app_ctx.streams,
        [Column("KEY"), Column("VALUE"), Column("SOURCE")],
        [[k, "-" if v is None else str(_plain(v)), s] for k, v, s in rows],
    )


def _scrubbed(value: Any) -> Any:
    from ..redact import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return {
            k: "[redacted]" if "auth" in k.lower() or "key" in k.lower() else v
            for k, v in dict(value).items()
        }
    return value


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")
