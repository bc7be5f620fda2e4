"""`tokencli prompt ...`: the versioned prompt library (see tokencli.prompts)."""

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt
from .output import Column, emit_result, local_time, render_table

if TYPE_CHECKING:
    from ..prompts import PromptVersion
    from .context import AppContext

HELP = "Save, version, label and share prompts: every version immutable, labels move."

app = typer.Typer(
    name="prompt",
    help=HELP
    + """

Templates name variables {{like_this}} (single braces stay literal); 'run --prompt NAME
--var KEY=VALUE' fills them in and records the prompt's name and version on the call, so
'report --by prompt' and 'logs --prompt NAME@2' show what each version costs.""",
    no_args_is_help=True,
)


class FileFormat(StrEnum):
    toml = "toml"
    yaml = "yaml"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="prompt")


@app.command("save")
def save(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name, e.g. summary.")],
    text: Annotated[
        str | None,
        typer.Argument(
            help="The template (the user part); or --file, or stdin.", show_default=False
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("-f", "--file", metavar="PATH", help="Read the template from a file."),
    ] = None,
    system: Annotated[
        str | None, typer.Option("-s", "--system", help="The system part (a template too).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("-m", "--model", help="The model this version runs on by default."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="KEY=VALUE",
            help="A default run parameter: max_tokens or temperature (repeatable).",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="Point this label (e.g. production) at the version."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why this version exists.")] = None,
) -> None:
    """Save a new version of prompt NAME (text identical to the latest version adds nothing).

    What is not given comes from the latest version: its system part, model and
    parameters (-s '' or -m '' clears one; --param KEY= drops a parameter).
    """
    from ..prompts.library import parse_params, save_prompt

    app_ctx = app_context(ctx)
    template = _template_text(app_ctx, text, file)
    params = parse_params(param or [])
    if model:  # '' clears the model
        from ..calls.resolve import resolve_chain

        resolve_chain(app_ctx.settings, model)  # an unknown provider or alias fails now
    ledger = app_ctx.ledger()
    assert ledger is not None
    try:
        saved = save_prompt(
            ledger,
            name,
            template,
            system=system,
            model=model,
            params=params,
            note=note,
            label=label,
            now=app_ctx.now(),
            inherit=True,
        )
    finally:
        ledger.close()
    version = saved.version
    out = app_ctx.streams.stdout
    out.write(version.ref + "\n")
    out.flush()
    labelled = f"; {label} → @{version.version}" if label else ""
    if saved.added:
        names = ", ".join(version.variables) or "none"
        app_ctx.err(f"tokencli: saved {version.ref} (variables: {names}){labelled}.")
    else:
        app_ctx.err(
            f"tokencli: {name} is unchanged: identical to {version.ref}, nothing saved{labelled}."
        )


def _template_text(app_ctx: "AppContext", text: str | None, file: str | None) -> str:
    if text is not None and file is not None:
        raise UsageError("Both TEXT and --file were given.", "Give the template one way.")
    if file is not None:
        try:
            return Path(file).read_text("utf-8")
        except FileNotFoundError:
            raise UsageError(f"No such file: {file}.", "Check the --file path.") from None
        except UnicodeDecodeError:
            raise UsageError(f"{file} is not UTF-8 text.", None) from None
        except OSError as exc:
            raise UsageError(f"Cannot read {file}: {exc.strerror}.", None) from None
    if text is not None:
        return text
    if not app_ctx.streams.stdin_isatty:
        from .run_cmd import read_stdin_text

        piped = read_stdin_text(app_ctx.streams)
        if piped is not None and piped.strip():
            return piped
    raise UsageError(
        "No template given.", "Pass it as TEXT, read it with --file PATH, or pipe it on stdin."
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Show every version of this prompt.", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Saved prompts with their latest version and labels; with NAME, its versions."""
    from ..prompts.library import list_prompts, list_versions

    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    streams = app_ctx.streams
    if name is not None:
        versions = list_versions(ledger, name)
        if json_out:
            from ..results import PromptVersionList

            emit_result(streams, PromptVersionList(versions))
            return
        render_table(
            streams,
            [
                Column("VERSION", "right"),
                Column("CREATED"),
                Column("LABELS"),
                Column("MODEL"),
                Column("PARAMS"),
                Column("NOTE"),
            ],
            [
                [
                    str(v.version),
                    local_time(v.created) if v.created else "-",
                    ", ".join((*v.labels, "retired") if v.retired else v.labels) or "-",
                    v.model or "-",
                    _params(v) or "-",
                    v.note or "",
                ]
                for v in versions
            ],
        )
        return
    prompts = list_prompts(ledger)
    if json_out:
        from ..results import PromptList

        emit_result(streams, PromptList(prompts))
        return
    if not prompts:
        app_ctx.err("tokencli: no prompts saved yet; 'tokencli prompt save NAME TEXT' adds one.")
        return
    render_table(
        streams,
        [
            Column("NAME"),
            Column("LATEST", "right"),
            Column("VERSIONS", "right"),
            Column("LABELS"),
            Column("MODEL"),
            Column("VARIABLES"),
            Column("UPDATED"),
        ],
        [
            [
                p.name,
                str(p.latest.version),
                str(p.versions),
                ", ".join(f"{k}@{v}" for k, v in sorted(p.labels.items())) or "-",
                p.latest.model or "-",
                ", ".join(p.latest.variables) or "-",
                local_time(p.latest.created) if p.latest.created else "-",
            ]
            for p in prompts
        ],
    )


def _params(v: "PromptVersion") -> str:
    return ", ".join(f"{k}={val}" for k, val in sorted(v.params.items()))


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME[@VERSION|@LABEL]", help="The prompt (default: latest).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """One version of a prompt: its texts, variables, model, parameters and labels."""
    from ..prompts import resolve_prompt

    app_ctx = app_context(ctx)
    version = resolve_prompt(app_ctx.ledger(create=False), ref, allow_retired=True)
    if json_out:
        from ..results import PromptResult

        emit_result(app_ctx.streams, PromptResult(version))
        return
    labels = ", ".join(version.labels)
    lines = [
        f"{version.ref}"
        + (f" ({labels})" if labels else "")
        + (" · retired: kept for the calls that used it" if version.retired else ""),
        f"created: {local_time(version.created) if version.created else '-'}",
        f"model: {version.model or '-'}" + (f" · {_params(version)}" if version.params else ""),
        f"variables: {', '.join(version.variables) or 'none'}",
    ]
    if version.note:
        lines.append(f"note: {version.note}")
    if version.system is not None:
        lines += ["--- system", version.system.rstrip("\n")]
    lines += ["--- template", version.template.rstrip("\n")]
    from ..safetext import visible

    out = app_ctx.streams.stdout
    out.write(visible("\n".join(lines), multiline=True) + "\n")
    out.flush()


@app.command("diff")
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt.")],
    a: Annotated[str, typer.Argument(metavar="A", help="A version or label (3, production).")],
    b: Annotated[str, typer.Argument(metavar="B", help="Another version or label.")],
    model: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--model",
            help="Count tokens on this model (default: B's model, A's, the config's).",
        ),
    ] = None,
) -> None:
    """A unified diff of two versions, and the input tokens of each (counted offline)."""
    import difflib

    from ..prompts import resolve_prompt

    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    old, new = (
        resolve_prompt(ledger, f"{name}@{x.removeprefix(name + '@')}", allow_retired=True)
        for x in (a, b)
    )
    lines: list[str] = []
    for label, left, right in (
        ("system", old.system or "", new.system or ""),
        ("template", old.template, new.template),
        ("settings", _settings_text(old), _settings_text(new)),
    ):
        lines += difflib.unified_diff(
            left.splitlines(),
            right.splitlines(),
            f"{old.ref} {label}",
            f"{new.ref} {label}",
            lineterm="",
        )
    if not lines:
        lines.append(f"{old.ref} and {new.ref} are identical.")
    from ..safetext import visible

    out = app_ctx.streams.stdout
    out.write(visible("\n".join(lines), multiline=True) + "\n")
    for line in _token_lines(app_ctx, old, new, model):
        out.write(line + "\n")
    out.flush()


def _settings_text(v: "PromptVersion") -> str:
    parts = [f"model = {v.model}"] if v.model else []
    parts += [f"{k} = {val}" for k, val in sorted(v.params.items())]
    return "\n".join(parts)


def _token_lines(
    app_ctx: "AppContext", old: "PromptVersion", new: "PromptVersion", model: str | None
) -> list[str]:
    """Each version's input tokens on one model, variables left as written."""
    from ..calls.resolve import resolve_model
    from ..pricing.counting import count_request
    from ..providers.base import ChatRequest, Message

    settings = app_ctx.settings
    spec = model or new.model or old.model or settings.defaults.model
    if not spec:
        app_ctx.err("tokencli: no model to count tokens on: pass -m PROVIDER:MODEL.")
        return []
    resolved = resolve_model(settings, spec)
    counts = []
    for v in (old, new):
        request = ChatRequest(
            model=resolved.model,
            messages=(Message("user", v.template),),
            system=v.system,
            stream=False,
        )
        counts.append(count_request(settings, resolved, request, when=app_ctx.now()))
    before, after = counts[0].input_tokens, counts[1].input_tokens
    change = after - before
    percent = f" ({change / before:+.1%})" if before else ""
    estimated = " (estimated)" if "estimated" in {c.usage_source for c in counts} else ""
    return [
        f"tokens on {counts[0].ref}{estimated}, variables unfilled: "
        f"{old.ref} {before:,} → {new.ref} {after:,}: {change:+,}{percent}"
    ]


@app.command("label")
def label(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="The version to label.")],
    label: Annotated[str, typer.Argument(help="The label, e.g. production (moves if set).")],
) -> None:
    """Point LABEL at a version; a label names one version at a time, so it moves."""
    from ..prompts.library import set_label

    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    if ledger is None:
        from ..prompts import resolve_prompt

        resolve_prompt(None, ref)  # says the prompt is unknown
        return
    version, before = set_label(ledger, ref, label, now=app_ctx.now())
    moved = f" (moved from @{before})" if before is not None and before != version.version else ""
    app_ctx.err(f"tokencli: {label} → {version.ref}{moved}.")


@app.command("rm")
def rm(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME[@VERSION]", help="A whole prompt, or one version.")
    ],
) -> None:
    """Remove a prompt or one version; versions recorded calls used are kept, retired."""
    from ..prompts.library import remove_prompt

    app_ctx = app_context(ctx)
    removed = remove_prompt(app_ctx.ledger(create=False), ref)
    parts = []
    if removed.deleted:
        parts.append("deleted " + ", ".join(f"{removed.name}@{v}" for v in removed.deleted))
    if removed.retired:
        kept = ", ".join(
            f"{removed.name}@{v} ({_calls(removed.calls.get(v, 0))})" for v in removed.retired
        )
        parts.append(f"kept {kept} as retired: recorded calls used them")
    app_ctx.err(f"tokencli: {'; '.join(parts)}.")


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{n:,} calls"


@app.command("export")
def export(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Only this prompt (default: all).", show_default=False)
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="A file, or a directory (ending in /, or existing) for one file per prompt;"
            " default: stdout.",
        ),
    ] = None,
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", help="toml (default) or yaml (default for a .yaml file)."),
    ] = None,
) -> None:
    """Write prompts and their versions to a TOML or YAML file you can keep in git."""
    from ..outpath import write_output
    from ..prompts.files import dumps, export_data, file_format
    from ..prompts.library import check_name, list_prompts

    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    names = [check_name(name)] if name else [p.name for p in list_prompts(ledger)]
    target = Path(output) if output else None
    to_dir = output is not None and (output.endswith(("/", "\\")) or Path(output).is_dir())
    kind = file_format(None if to_dir else target, fmt.value if fmt else None)
    if not names:
        app_ctx.err("tokencli: no prompts saved yet: nothing to export.")
    if target is None:
        if names:
            app_ctx.streams.stdout.write(dumps(export_data(ledger, names), kind))
            app_ctx.streams.stdout.flush()
        return
    files = [(target / f"{n}.{kind}", [n]) for n in names] if to_dir else [(target, names)]
    try:
        if to_dir:
            target.mkdir(parents=True, exist_ok=True)
        for path, group in files:
            if group or not to_dir:
                write_output(path, dumps(export_data(ledger, group), kind))
    except OSError as exc:
        raise UsageError(f"Cannot write {output}: {exc.strerror}.", None) from None
    app_ctx.err(
        f"tokencli: wrote {len(names)} prompt{'s' if len(names) != 1 else ''} to "
        + (f"{len(files)} files in {target}" if to_dir else str(target))
        + "."
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH", help="A prompt file (.toml, .yaml), or a directory of them."
        ),
    ],
) -> None:
    """Add the versions in prompt files that the library lacks (running it twice adds nothing)."""
    from ..prompts.files import ImportTally, import_data, loads

    app_ctx = app_context(ctx)
    source = Path(path)
    if source.is_dir():
        files = sorted(
            p for p in source.iterdir() if p.suffix.lower() in (".toml", ".yaml", ".yml")
        )
        if not files:
            raise UsageError(f"{path} holds no .toml or .yaml files.", None)
    elif source.exists():
        files = [source]
    else:
        raise UsageError(f"No such file: {path}.", "Check the path.")
    documents = []
    for file in files:
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read {file}: {exc}.", None) from None
        documents.append((loads(text, str(file)), str(file)))
    ledger = app_ctx.ledger()
    assert ledger is not None
    total = ImportTally()
    try:
        for data, where in documents:
            tally = import_data(ledger, data, where, now=app_ctx.now())
            total.prompts += tally.prompts
            total.added += tally.added
            total.present += tally.present
            total.labels += tally.labels
    finally:
        ledger.close()
    app_ctx.err(
        f"tokencli: imported {total.prompts} prompt{'s' if total.prompts != 1 else ''}: "
        f"{total.added} new version{'s' if total.added != 1 else ''}, "
        f"{total.present} already present, {total.labels} label{'s' if total.labels != 1 else ''} set."
    )
