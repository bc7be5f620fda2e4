"""What `--json` prints: one result object per document, each naming its schema.

A command builds one of these from the core's answer; `cli/output.py` is the one
place that turns a result into JSON text. docs/json.md describes every document.

Versioning, so scripts keep working:
- an object document starts with `"schema": "tokencli.<document>/<N>"`;
- collections stay bare, as DESIGN.md has `logs`: the lists of `logs`, `models`,
  `config show` and `keys list`, and `config path`'s map of names; their elements
  follow the schema named here all the same;
- within a version fields are only ever added; removing or renaming a field, or
  changing its type, bumps N.

Bodies hold JSON values only: money as exact decimal strings, times as ISO 8601 text.
The classes are `Record`s: declared like dataclasses, but cheap to define, since every
`--json` command imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .money import decimal_str
from .records import Record

if TYPE_CHECKING:
    from datetime import datetime

    from .alerts import Alert
    from .insights.balances import Finding, Row, Status
    from .insights.budgets import BudgetState
    from .insights.model import Report
    from .insights.outlook import BudgetOutlook, Forecast, Projection
    from .insights.reconcile import Reconciliation
    from .ledger import Call
    from .ledger.alerts import AlertRow
    from .ledger.comparisons import SavedComparison
    from .ledger.refills import Refill
    from .ledger.retention import PruneCounts
    from .pricing.counting import DryRun, TokenCount
    from .pricing.index import ModelPrice
    from .prompts.library import PromptSummary, PromptVersion
    from .settings.model import Budget


class Result(Record):
    """A `--json` document: `schema` names it and its version, `body()` is its data."""

    schema: ClassVar[str]
    # A collection (a list, or a map keyed by name) prints bare: a `schema` key
    # there would read as one more element. Records print `schema` first.
    collection: ClassVar[bool] = False

    def body(self) -> dict[str, Any] | list[Any]:
        raise NotImplementedError

    def document(self) -> dict[str, Any] | list[Any]:
        """What is printed: a record with `schema` first, or the bare collection."""
        body = self.body()
        if self.collection or not isinstance(body, dict):
            return body
        return {"schema": self.schema, **body}


def call_record(call: Call, *, text: str | None = None, with_text: bool = False) -> dict[str, Any]:
    """A recorded call as scripts read it: `run`, `logs show`, each element of `logs`."""
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


class CallResult(Result):
    """`run --json` (done or failed) and `logs show --json`: one call."""

    schema: ClassVar[str] = "tokencli.call/1"
    call: Call
    text: str | None = None  # run: the answer as printed
    with_text: bool = False  # logs show: system, prompt and response from the ledger

    def body(self) -> dict[str, Any]:
        return call_record(self.call, text=self.text, with_text=self.with_text)


class CallList(Result):
    """`logs --json`: a list of call records (their texts with `--text`)."""

    schema: ClassVar[str] = "tokencli.calls/1"
    collection: ClassVar[bool] = True
    calls: Sequence[Call]
    with_text: bool = False

    def body(self) -> list[Any]:
        return [call_record(c, with_text=self.with_text) for c in self.calls]


def _count_fields(result: TokenCount) -> dict[str, Any]:
    return {
        "provider": result.provider,
        "model": result.model,
        "input_tokens": result.input_tokens,
        "usage_source": result.usage_source,
        "method": result.method,
        "cost": decimal_str(result.cost.amount),
        "currency": result.cost.currency,
        "price_source": result.cost.source,
        "notes": list(result.notes),
    }


class CountResult(Result):
    """`count --json`: a text's input tokens for a model, and their price."""

    schema: ClassVar[str] = "tokencli.count/1"
    count: TokenCount

    def body(self) -> dict[str, Any]:
        return _count_fields(self.count)


class DryRunResult(Result):
    """`run --dry-run --json`: the count's fields, and the request that was not sent."""

    schema: ClassVar[str] = "tokencli.dry-run/1"
    plan: DryRun
    prompt: tuple[str, int | None] | None = (
        None  # run --prompt: the saved prompt's name and version
    )

    def body(self) -> dict[str, Any]:
        request = self.plan.request
        data = {
            "dry_run": True,
            **_count_fields(self.plan.count),
            "alias": self.plan.alias,
            "request": {
                "system": request.system,
                "prompt": request.prompt_text,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "stream": request.stream,
            },
        }
        if self.prompt is not None:
            data["prompt"] = {"name": self.prompt[0], "version": self.prompt[1]}
        return data


class ModelList(Result):
    """`models --json`: each model with its prices per million tokens."""

    schema: ClassVar[str] = "tokencli.models/1"
    collection: ClassVar[bool] = True
    models: Sequence[ModelPrice]

    def body(self) -> list[Any]:
        return [
            {
                "provider": r.provider,
                "model": r.model,
                "input_per_mtok": decimal_str(r.input),
                "output_per_mtok": decimal_str(r.output),
                "cached_input_per_mtok": decimal_str(r.cached_input),
                "cache_write_per_mtok": decimal_str(r.cache_write),
                "currency": r.currency,
                "context_window": r.context_window,
                "source": r.source,
                "notes": r.notes.split(",") if r.notes else [],
                "source_url": r.url,
                "read": r.read.isoformat() if r.read else None,
                "aliases": list(r.aliases),
                "thinking_output_per_mtok": decimal_str(r.thinking_output),
                "tiers": [
                    {
                        "up_to": t.up_to,
                        "input_per_mtok": decimal_str(t.input),
                        "output_per_mtok": decimal_str(t.output),
                        "thinking_output_per_mtok": decimal_str(t.thinking_output),
                        "cached_input_per_mtok": decimal_str(t.cached_input),
                    }
                    for t in r.tiers
                ],
                "off_peak": _off_peak(r.off_peak),
            }
            for r in self.models
        ]


def _off_peak(prices: Any) -> dict[str, Any] | None:
    """A yuan entry's time-of-day prices: when they apply (Beijing time), and what they are."""
    if prices is None:
        return None
    return {
        "input_per_mtok": decimal_str(prices.input),
        "output_per_mtok": decimal_str(prices.output),
        "cached_input_per_mtok": decimal_str(prices.cached_input),
        "thinking_output_per_mtok": decimal_str(prices.thinking_output),
        "during": [w.text for w in prices.during] or None,
        "outside": [w.text for w in prices.peak] or None,
        "timezone": "Asia/Shanghai",
    }


class ForecastResult(Result):
    """`forecast --json`: money as decimal strings, dates as YYYY-MM-DD."""

    schema: ClassVar[str] = "tokencli.forecast/1"
    forecast: Forecast

    def body(self) -> dict[str, Any]:
        result = self.forecast
        return {
            "version": 1,  # printed before `schema` existed; kept while this is /1
            "month": result.month,
            "tz": result.tz,
            "as_of": result.as_of.isoformat(),
            "day": result.day,
            "days_in_month": result.days_in_month,
            "currency": result.currency,
            "interval": 0.8,
            "total": _projection(result.total),
            "by": list(result.by),
            "groups": [
                {"key": dict(zip(result.by, g.key, strict=True)), **_projection(g)}
                for g in result.groups
            ],
            "budgets": [_outlook(b) for b in result.budgets],
            "unconverted": list(result.unconverted),
        }


def _projection(p: Projection) -> dict[str, Any]:
    return {
        "spent": decimal_str(p.spent),
        "projected": decimal_str(p.expected),
        "low": decimal_str(p.low),
        "high": decimal_str(p.high),
        "linear_burn": decimal_str(p.linear),
        "method": p.method,
    }


def _outlook(b: BudgetOutlook) -> dict[str, Any]:
    return {
        "name": b.name,
        "amount": decimal_str(b.amount),
        "currency": b.currency,
        "period": b.period,
        "scope": b.scope,
        "window": b.window,
        "spent": decimal_str(b.spent),
        "projected": decimal_str(b.expected),
        "low": decimal_str(b.low),
        "high": decimal_str(b.high),
        "exceeded_on": b.exceeded_on.isoformat() if b.exceeded_on else None,
        "runs_out_on": b.runs_out.isoformat() if b.runs_out else None,
        "chance_runs_out": round(b.chance, 3),
    }


def budget_record(b: Budget) -> dict[str, Any]:
    """A configured budget as `budget list` prints it."""
    return {
        "name": b.name,
        "unit": "tokens" if b.in_tokens else b.currency,
        "limit": str(b.tokens) if b.tokens is not None else decimal_str(b.amount),
        "period": b.period,
        "scope": b.scope.describe(),
        "warn": list(b.warn),
        "block": b.block,
        "allow_unpriced": b.allow_unpriced,
    }


class BudgetList(Result):
    """`budget list --json`: the configured budgets, by name."""

    schema: ClassVar[str] = "tokencli.budgets/1"
    collection: ClassVar[bool] = True
    budgets: Sequence[Budget]

    def body(self) -> list[Any]:
        return [budget_record(b) for b in self.budgets]


def _budget_state(s: BudgetState) -> dict[str, Any]:
    return {
        **budget_record(s.budget),
        "window": s.window.label,
        "tz": s.window.tz,
        "start": s.window.start.isoformat(),
        "end": s.window.end.isoformat(),
        "spent": decimal_str(s.spent),
        "reserved": decimal_str(s.reserved),
        "remaining": decimal_str(s.remaining),
        "percent": decimal_str(s.percent),
        "crossed": list(s.crossed),
        "projected": decimal_str(s.projected),
        "low": decimal_str(s.low),
        "high": decimal_str(s.high),
        "exceeded_on": s.exceeded_on.isoformat() if s.exceeded_on else None,
        "crosses_on": s.crosses_on.isoformat() if s.crosses_on else None,
        "on_pace": s.on_pace,
        "chance": None if s.chance is None else round(s.chance, 3),
        "unconvertible": dict(s.unconvertible),
    }


class BudgetStatusResult(Result):
    """`budget status --json`: each budget in its current period."""

    schema: ClassVar[str] = "tokencli.budget-status/1"
    as_of: datetime
    states: Sequence[BudgetState]

    def body(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "interval": 0.8,
            "budgets": [_budget_state(s) for s in self.states],
        }


class BudgetCheckResult(Result):
    """`budget check --json`: what crossed (exit 3 when anything did)."""

    schema: ClassVar[str] = "tokencli.budget-check/1"
    as_of: datetime
    states: Sequence[BudgetState]
    pace: bool
    flagged: Sequence[str]
    anomalies: Sequence[Alert] = ()

    def body(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "pace": self.pace,
            "crossed": bool(self.flagged) or bool(self.anomalies),
            "flagged": list(self.flagged),
            "budgets": [_budget_state(s) for s in self.states],
            "anomalies": [
                {"kind": a.kind, "key": a.key, "title": a.title, "message": a.message}
                for a in self.anomalies
            ],
        }


class ReportResult(Result):
    """`report --json` (and `--format json`): see `insights.formats.report_to_dict`."""

    schema: ClassVar[str] = "tokencli.report/1"
    report: Report

    def body(self) -> dict[str, Any]:
        from .insights.formats import report_to_dict

        return report_to_dict(self.report)


class Setting(Record):
    key: str  # "defaults.model", "providers.openai.base_url", ...
    value: Any  # a JSON value; secrets already redacted
    source: str  # default, preset, file:line, env, flag, ...


class SettingList(Result):
    """`config show --json`: every effective setting with its source."""

    schema: ClassVar[str] = "tokencli.settings/1"
    collection: ClassVar[bool] = True
    settings: Sequence[Setting]

    def body(self) -> list[Any]:
        return [{"key": s.key, "value": s.value, "source": s.source} for s in self.settings]


class PathsResult(Result):
    """`config path --json`: {name: {path, source}} for config, ledger, keys and cache."""

    schema: ClassVar[str] = "tokencli.paths/1"
    collection: ClassVar[bool] = True
    paths: Sequence[tuple[str, str, str]]  # (name, path, source)

    def body(self) -> dict[str, Any]:
        return {name: {"path": path, "source": source} for name, path, source in self.paths}


class KeyState(Record):
    provider: str
    status: str  # set | missing
    source: str | None
    key: str | None  # masked
    env: Sequence[str]  # the variables the provider reads


class KeyList(Result):
    """`keys list --json`: each provider's key, masked, and where it comes from."""

    schema: ClassVar[str] = "tokencli.keys/1"
    collection: ClassVar[bool] = True
    keys: Sequence[KeyState]

    def body(self) -> list[Any]:
        return [
            {
                "provider": k.provider,
                "status": k.status,
                "source": k.source,
                "key": k.key,
                "env": list(k.env),
            }
            for k in self.keys
        ]


class ImportResult(Result):
    """`ledger import --json`: how many calls went in, and how many were left out why."""

    schema: ClassVar[str] = "tokencli.import/1"
    inserted: int  # calls added
    skipped: int  # already in the ledger, or repeated in the file
    pruned: int  # pruned from this ledger before: left out

    def body(self) -> dict[str, Any]:
        return {"inserted": self.inserted, "skipped": self.skipped, "pruned": self.pruned}


class PruneResult(Result):
    """`ledger prune --json`: what was deleted (or with --dry-run, would be)."""

    schema: ClassVar[str] = "tokencli.prune/1"
    cutoff: str
    dry_run: bool
    plan: PruneCounts | None  # what was found before the cutoff; None: no ledger
    deleted: int = 0

    def body(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "cutoff": self.cutoff,
            "dry_run": self.dry_run,
            "would_delete" if self.dry_run else "deleted": (
                (plan.calls if plan else 0) if self.dry_run else self.deleted
            ),
            "oldest": plan.first_ts if plan else None,
            "newest": plan.last_ts if plan else None,
            "pending_kept": plan.pending_kept if plan else 0,
        }


def prompt_record(v: PromptVersion) -> dict[str, Any]:
    """A saved prompt version as scripts read it: `prompt show`, `prompt list NAME`."""
    return {
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "labels": list(v.labels),
        "model": v.model,
        "params": dict(v.params),
        "variables": list(v.variables),
        "system": v.system,
        "template": v.template,
        "note": v.note,
        "created": v.created,
        "retired": v.retired,
        "hash": v.content_hash,
    }


class PromptResult(Result):
    """`prompt show --json`: one version of a saved prompt."""

    schema: ClassVar[str] = "tokencli.prompt/1"
    version: PromptVersion

    def body(self) -> dict[str, Any]:
        return prompt_record(self.version)


class PromptVersionList(Result):
    """`prompt list NAME --json`: every version of one prompt, oldest first."""

    schema: ClassVar[str] = "tokencli.prompt-versions/1"
    collection: ClassVar[bool] = True
    versions: Sequence[PromptVersion]

    def body(self) -> list[Any]:
        return [prompt_record(v) for v in self.versions]


class PromptList(Result):
    """`prompt list --json`: each saved prompt, its latest version and its labels."""

    schema: ClassVar[str] = "tokencli.prompts/1"
    collection: ClassVar[bool] = True
    prompts: Sequence[PromptSummary]

    def body(self) -> list[Any]:
        return [
            {
                "name": p.name,
                "latest": p.latest.version,
                "versions": p.versions,
                "labels": dict(p.labels),
                "model": p.latest.model,
                "variables": list(p.latest.variables),
                "updated": p.latest.created,
            }
            for p in self.prompts
        ]


def _comparison_head(saved: SavedComparison) -> dict[str, Any]:
    spec = saved.spec
    return {
        "id": saved.id,
        "ts": saved.ts,
        "mode": saved.mode,
        "status": saved.status,
        "columns": [
            {
                "label": c["label"],
                "ref": c["ref"],
                "kind": c["kind"],
                "prompt_name": c.get("prompt_name"),
                "prompt_version": c.get("prompt_version"),
            }
            for c in spec["columns"]
        ],
        "models": list(spec["models"]),
        "inputs": [i["label"] for i in spec["inputs"]],
        "runs": spec["runs"],
    }


class ComparisonResult(Result):
    """`compare --json`, `compare show ID --json`: one comparison, its cells and answers."""

    schema: ClassVar[str] = "tokencli.comparison/1"
    saved: SavedComparison

    def body(self) -> dict[str, Any]:
        results = self.saved.results or {}
        return {
            **_comparison_head(self.saved),
            "cells": results.get("cells", []),
            "projected_cost": results.get("projected_cost"),
            "projected_currency": results.get("projected_currency"),
            "notes": results.get("notes", []),
        }


class ComparisonList(Result):
    """`compare list --json`: saved comparisons, newest first (without their cells)."""

    schema: ClassVar[str] = "tokencli.comparisons/1"
    collection: ClassVar[bool] = True
    saved: Sequence[SavedComparison]

    def body(self) -> list[Any]:
        return [_comparison_head(s) for s in self.saved]


# Every document, for docs/json.md and the contract test.
class AlertList(Result):
    """`alerts list --json`: the alerts raised, newest first, one element per channel."""

    schema: ClassVar[str] = "tokencli.alerts/1"
    collection: ClassVar[bool] = True
    rows: Sequence[AlertRow]

    def body(self) -> list[Any]:
        return [
            {
                "key": r.key,
                "kind": r.kind,
                "channel": r.channel,
                "status": r.status,
                "attempts": r.attempts,
                "error": r.last_error,
                "ts": r.ts,
                "sent_ts": r.sent_ts,
            }
            for r in self.rows
        ]


class ChannelOutcome(Record):
    name: str
    type: str
    target: str  # what it is, safe to print: the webhook's host only
    error: str | None  # None: delivered


class AlertTest(Result):
    """`alerts test --json`: how each channel took the sample alert."""

    schema: ClassVar[str] = "tokencli.alert-test/1"
    channels: Sequence[ChannelOutcome]

    def body(self) -> dict[str, Any]:
        return {
            "ok": all(c.error is None for c in self.channels),
            "channels": [
                {
                    "name": c.name,
                    "type": c.type,
                    "target": c.target,
                    "status": "ok" if c.error is None else "failed",
                    "error": c.error,
                }
                for c in self.channels
            ],
        }


class RefillList(Result):
    """`refill list --json`: the top-ups and grants recorded, oldest first."""

    schema: ClassVar[str] = "tokencli.refills/1"
    collection: ClassVar[bool] = True
    refills: Sequence[Refill]

    def body(self) -> list[Any]:
        from .ledger import format_ts

        return [
            {
                "id": r.id,
                "ts": format_ts(r.ts),
                "provider": r.provider,
                "amount": decimal_str(r.amount),
                "unit": r.unit,
                "grant": r.grant,
                "expires": format_ts(r.expires) if r.expires else None,
                "note": r.note,
            }
            for r in self.refills
        ]


def _refill_row(row: Row) -> dict[str, Any]:
    from .ledger import format_ts

    pool, live, runway = row.ledger, row.live, row.runway
    return {
        "provider": row.provider,
        "unit": row.unit or None,
        "balance": decimal_str(row.balance),
        "basis": row.basis,
        "ledger": None
        if pool is None
        else {
            "balance": decimal_str(pool.balance),
            "credited": decimal_str(pool.credited),
            "granted": decimal_str(pool.granted),
            "spent": decimal_str(pool.spent),
            "expired": decimal_str(pool.expired),
            "grants_left": decimal_str(pool.grants_left),
            "credits_left": decimal_str(pool.credits_left),
            "overdraft": decimal_str(pool.overdraft),
            "next_expiry": format_ts(pool.next_expiry) if pool.next_expiry else None,
            "unconverted": list(pool.unconverted),
        },
        "live": None
        if live is None or live.balance is None
        else {
            "balance": decimal_str(live.balance),
            "granted": decimal_str(live.granted),
            "paid": decimal_str(live.paid),
            "source": live.source,
            "ts": format_ts(live.ts),
        },
        "live_error": row.error,
        "drift": decimal_str(row.drift),
        "runway": None
        if runway is None
        else {
            "runs_out": runway.runs_out.isoformat() if runway.runs_out else None,
            "low": runway.early.isoformat() if runway.early else None,
            "high": runway.late.isoformat() if runway.late else None,
            "per_day": decimal_str(runway.per_day),
            "next_30_days": decimal_str(runway.next_30_days),
            "method": runway.method,
        },
    }


def _refill_status(status: Status) -> dict[str, Any]:
    from .ledger import format_ts

    return {
        "as_of": status.as_of.isoformat(),
        "live": status.live_asked,
        "offline": status.offline,
        "providers": [_refill_row(r) for r in status.rows],
        "outside": [
            {
                "provider": o.provider,
                "currency": o.currency,
                "kind": o.kind,
                "since": format_ts(o.since),
                "fell": decimal_str(o.fell),
                "metered": decimal_str(o.metered),
                "amount": decimal_str(o.amount),
            }
            for o in status.outside
        ],
    }


class RefillStatusResult(Result):
    """`refill status --json`: per provider and unit, the balances, drift and runway."""

    schema: ClassVar[str] = "tokencli.refill-status/1"
    status: Status

    def body(self) -> dict[str, Any]:
        return _refill_status(self.status)


class RefillCheckResult(Result):
    """`refill check --json`: the status, and each balance against the threshold."""

    schema: ClassVar[str] = "tokencli.refill-check/1"
    status: Status
    threshold: str
    findings: Sequence[Finding]
    unreadable: Sequence[str]

    def body(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "below": [f.row.provider for f in self.findings if f.below],
            "unreadable": list(self.unreadable),
            "checked": [
                {
                    "provider": f.row.provider,
                    "unit": f.row.unit,
                    "value": decimal_str(f.value),
                    "below": f.below,
                }
                for f in self.findings
            ],
            **_refill_status(self.status),
        }


class ReconcileResult(Result):
    """`reconcile --json`: per provider, the ledger's cost against the provider's books."""

    schema: ClassVar[str] = "tokencli.reconcile/1"
    found: Reconciliation

    def body(self) -> dict[str, Any]:
        r = self.found
        return {
            "month": r.month,
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "tolerance": decimal_str(r.tolerance),
            "providers": [
                {
                    "provider": s.provider,
                    "method": s.method,
                    "status": s.status,
                    "reason": s.reason,
                    "lines": [
                        {
                            "day": line.day.isoformat() if line.day else None,
                            "model": line.model,
                            "currency": line.currency,
                            "ledger": decimal_str(line.ledger),
                            "billed": decimal_str(line.billed),
                            "difference": decimal_str(line.difference),
                            "ledger_tokens": line.ledger_tokens,
                            "billed_tokens": line.billed_tokens,
                            "flagged": line.flagged,
                            "cause": line.cause,
                        }
                        for line in s.lines
                    ],
                }
                for s in r.sources
            ],
        }


RESULTS: tuple[type[Result], ...] = (
    CallResult,
    CallList,
    DryRunResult,
    CountResult,
    ModelList,
    ForecastResult,
    BudgetList,
    BudgetStatusResult,
    BudgetCheckResult,
    ReportResult,
    SettingList,
    PathsResult,
    KeyList,
    ImportResult,
    PruneResult,
    PromptResult,
    PromptVersionList,
    PromptList,
    ComparisonResult,
    ComparisonList,
    AlertList,
    AlertTest,
    RefillList,
    RefillStatusResult,
    RefillCheckResult,
    ReconcileResult,
)
