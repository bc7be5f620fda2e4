"""A comparison as text, Markdown or a self-contained HTML page.

Everything here reads the saved form (`ledger.comparisons.SavedComparison`: its
spec and results as JSON), so a fresh comparison and `compare show ID` print the
same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ..ledger.comparisons import SavedComparison
from ..money import format_money
from ..safetext import html_text as escape
from ..safetext import visible

OUTPUT_CHARS = 300  # of each output in the text table


def _money(text: str | None, currency: str | None) -> str:
    return "unknown" if text is None else format_money(Decimal(text), currency or "USD")


def _num(value: float | None, places: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{places}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}%"


def interval(diff: dict[str, Any] | None, n: int) -> str:
    """`-38.0% (95%: -44.0% … -32.0%)`, or why there is none."""
    if diff is None:
        return "—"
    if diff["low"] is None:
        return f"{diff['percent']:+.1f}% (n={n}, no interval)"
    return f"{diff['percent']:+.1f}% (95%: {diff['low']:+.1f}% … {diff['high']:+.1f}%)"


def headline(saved: SavedComparison) -> str:
    spec = saved.spec
    n_in = len(spec["inputs"])
    parts = [
        f"Comparison {saved.id}",
        saved.mode + ("" if saved.status == "complete" else f", {saved.status}"),
        f"{len(spec['columns'])} columns × {_plural(len(spec['models']), 'model')}",
        _plural(n_in, "input"),
    ]
    if saved.mode == "live":
        parts.append(_plural(spec["runs"], "run") + " each")
    return " · ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def legend(saved: SavedComparison) -> list[tuple[str, str, str]]:
    """(label, kind, what) for every column."""
    rows = []
    for column in saved.spec["columns"]:
        if column["kind"] == "prompt":
            what = f"{column['prompt_name']}@{column['prompt_version']}"
        elif column["kind"] == "file":
            what = column["ref"].removeprefix("@")
        else:
            text = " ".join(column["template"].split())
            what = text if len(text) <= 70 else text[:69] + "…"
        rows.append((column["label"], column["kind"], what))
    return rows


def table(saved: SavedComparison) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the comparison's main table."""
    results = saved.results or {"cells": []}
    labels = [c["label"] for c in saved.spec["columns"]]
    first = labels[0]
    live = saved.mode == "live"
    if live:
        header = [
            "model",
            "column",
            "ok",
            "input tokens",
            "output tokens",
            f"tokens vs {first}",
            "cost/run",
            f"cost vs {first}",
            "latency ms",
        ]
    else:
        header = [
            "model",
            "column",
            "input tokens",
            f"vs {first}",
            "output/run",
            "per 1,000 runs",
        ]
    rows: list[list[str]] = []
    previous = None
    for cell in results["cells"]:
        model = cell["model"] if cell["model"] != previous else ""
        previous = cell["model"]
        label = labels[cell["column"]]
        if live:
            run = cell["live"]
            n = run["ok"]
            rows.append(
                [
                    model,
                    label,
                    f"{n}/{n + run['failed'] + run['interrupted'] + run['not_run']}",
                    _spread(run["input_tokens_mean"], run["input_tokens_sd"]),
                    _spread(run["output_tokens_mean"], run["output_tokens_sd"]),
                    interval(run["tokens_vs_first"], n),
                    _money(run["cost_mean"], cell["currency"]),
                    interval(run["cost_vs_first"], n),
                    _spread(run["latency_ms_mean"], run["latency_ms_sd"]),
                ]
            )
        else:
            tokens = f"{cell['input_tokens']:,}" + ("" if cell["counted"] else " ~")
            diff = (
                "—"
                if cell["tokens_diff"] is None
                else f"{cell['tokens_diff']:+,} ({_pct(cell['tokens_diff_percent'])})"
            )
            rows.append(
                [
                    model,
                    label,
                    tokens,
                    diff,
                    _num(cell["output_tokens"]),
                    _money(cell["cost_per_1000"], cell["currency"]),
                ]
            )
    return header, rows


def _spread(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    return _num(mean, 1) + ("" if sd is None else f" ± {sd:,.1f}")


def notes(saved: SavedComparison) -> list[str]:
    results = saved.results or {"cells": []}
    out = []
    cells = results["cells"]
    if any(not c["counted"] for c in cells):
        out.append("~ estimated: no tokenizer for this model offline (about 4 characters a token).")
    by_source: dict[str, list[str]] = {}
    for c in cells:
        models = by_source.setdefault(c["output_source"], [])
        if c["model"] not in models:
            models.append(c["model"])
    if saved.mode == "live":
        pass  # measured, not estimated
    elif len(by_source) == 1:
        out.append(f"Output per run: {next(iter(by_source))}.")
    elif by_source:
        parts = [f"{', '.join(ms)}: {src}" for src, ms in by_source.items()]
        out.append("Output per run, " + "; ".join(parts) + ".")
    if results.get("projected_cost") is not None and saved.mode == "live":
        currency = results.get("projected_currency") or (cells[0]["currency"] if cells else None)
        out.append(f"Projected before running: {_money(results['projected_cost'], currency)}.")
    out.extend(results.get("notes", []))
    return out


def outputs(saved: SavedComparison) -> list[tuple[str, str, list[str]]]:
    """(model, input label, [the first answer of each column]) for the side-by-side view."""
    results = saved.results or {"cells": []}
    inputs = [i["label"] for i in saved.spec["inputs"]]
    n_cols = len(saved.spec["columns"])
    grid: dict[tuple[str, int], list[str]] = {}
    for cell in results["cells"]:
        for out in cell.get("outputs", []):
            row = grid.setdefault((cell["model"], out["input"]), ["—"] * n_cols)
            if row[cell["column"]] == "—" and out["text"] is not None:
                row[cell["column"]] = out["text"]
            elif row[cell["column"]] == "—" and out["run"] == 0:
                row[cell["column"]] = f"({out['status']})"
    return [(model, inputs[i], texts) for (model, i), texts in grid.items()]


# ------------------------------------------------------------------ text


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    header, rows = [visible(h) for h in header], [[visible(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def to_text(saved: SavedComparison) -> str:
    out = [headline(saved), ""]
    out += [
        f"  {visible(label)}  {kind:<6}  {visible(what)}" for label, kind, what in legend(saved)
    ]
    out.append("")
    out += _columns(*table(saved))
    side = outputs(saved)
    if side:
        labels = [c["label"] for c in saved.spec["columns"]]
        out += ["", "Outputs (first run of each):"]
        for model, item, texts in side:
            out.append(f"  {visible(model)} · {visible(item)}")
            for label, text in zip(labels, texts, strict=True):
                flat = " ".join(text.split())
                if len(flat) > OUTPUT_CHARS:
                    flat = flat[: OUTPUT_CHARS - 1] + "…"
                out.append(f"    {visible(label)}: {visible(flat)}")
    extra = notes(saved)
    if extra:
        out.append("")
        out += [visible(note) for note in extra]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ markdown


def _md(text: str) -> str:
    return visible(" ".join(text.split())).replace("|", "\\|")


def to_markdown(saved: SavedComparison) -> str:
    out = [f"# {_md(headline(saved))}", "", "| column | kind | prompt |", "|---|---|---|"]
    out += [f"| {_md(a)} | {b} | {_md(c)} |" for a, b, c in legend(saved)]
    header, rows = table(saved)
    out += ["", "| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    side = outputs(saved)
    if side:
        labels = [c["label"] for c in saved.spec["columns"]]
        out += [
            "",
            "## Outputs",
            "",
            "| model | input | " + " | ".join(_md(label) for label in labels) + " |",
        ]
        out.append("|" + "---|" * (len(labels) + 2))
        out += [
            f"| {_md(m)} | {_md(i)} | " + " | ".join(_md(t) for t in texts) + " |"
            for m, i, texts in side
        ]
    extra = notes(saved)
    if extra:
        out += ["", *(f"- {_md(n)}" for n in extra)]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ html


def to_html(saved: SavedComparison) -> str:
    """One self-contained page: no scripts, no external URL; charts as inline SVG."""
    from ..insights import svg
    from ..insights.html import CSS

    title = f"tokencli comparison {saved.id}"
    body = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{escape(headline(saved))}</p>']
    body.append(
        _html_table(["column", "kind", "prompt"], [list(r) for r in legend(saved)], numeric=0)
    )
    header, rows = table(saved)
    body += ["<h2>Tokens and cost</h2>", _html_table(header, rows, numeric=2)]
    labels = [c["label"] for c in saved.spec["columns"]]
    results = saved.results or {"cells": []}
    live = saved.mode == "live"
    token_bars: list[tuple[str, Decimal]] = []
    cost_bars: list[tuple[str, Decimal]] = []
    currency = None
    for cell in results["cells"]:
        name = f"{labels[cell['column']]} · {cell['model']}"
        if live:
            run = cell["live"]
            tokens = (run["input_tokens_mean"] or 0) + (run["output_tokens_mean"] or 0)
            cost = run["cost_mean"]
        else:
            tokens = cell["input_tokens"]
            cost = cell["cost_per_1000"]
        token_bars.append((name, Decimal(str(tokens))))
        if cost is not None:
            cost_bars.append((name, Decimal(cost)))
            currency = cell["currency"] or currency
    what = "tokens per run" if live else "input tokens"
    body.append(
        '<div class="chart">'
        + svg.bar_list_chart(
            token_bars, label=what.capitalize(), fmt=lambda v: f"{v:,.0f}", empty="No tokens."
        )
        + "</div>"
    )
    cost_label = "Cost per run" if live else "Cost per 1,000 runs"
    body.append(
        '<div class="chart">'
        + svg.bar_list_chart(
            cost_bars,
            label=cost_label,
            fmt=lambda v: format_money(v, currency or "USD"),
            empty="No priced calls.",
        )
        + "</div>"
    )
    side = outputs(saved)
    if side:
        body.append("<h2>Outputs side by side</h2>")
        body.append(
            _html_table(
                ["model", "input", *labels],
                [[m, i, *texts] for m, i, texts in side],
                numeric=99,
                pre=True,
            )
        )
    extra = notes(saved)
    if extra:
        body.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in extra) + "</ul>")
    css = CSS + "\ntd.out { white-space: pre-wrap; font-size: 13px; }"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n<style>\n{css}\n</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: int, pre: bool = False
) -> str:
    def cls(i: int) -> str:
        if pre and i >= 2:
            return ' class="out"'
        return ' class="n"' if i >= numeric else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
