"""Run many prompts, several at a time, and never pay twice for one item.

Input is JSON lines (`{"id": ..., "prompt": ..., "model": ..., ...}`) or one
prompt per line. Every call carries the batch's id and the item's key, so a
rerun of the same batch (same file, same settings) finds the items already
answered in the ledger, skips them, and still reports their results.
Ctrl-C stops handing out items; calls in flight stop at their next token and
are recorded as interrupted.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import CallFailed, ExitCode, Interrupted, TokencliError, UsageError
from ..ledger import Call
from .engine import Engine, RunOptions

if TYPE_CHECKING:
    from ..prompts import PromptVersion

ITEM_FIELDS = {
    "id",
    "prompt",
    "vars",
    "model",
    "system",
    "max_tokens",
    "temperature",
    "tags",
    "project",
}


@dataclass(frozen=True)
class BatchItem:
    key: str  # the item's "id", or "line-N"
    line: int
    options: RunOptions
    unused: tuple[str, ...] = ()  # variables given that the saved prompt does not use


@dataclass
class ItemResult:
    item: BatchItem
    call: Call | None
    text: str
    skipped: bool = False
    error: str | None = None
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        from ..money import decimal_str

        call = self.call
        data: dict[str, Any] = {
            "id": self.item.key,
            "line": self.item.line,
            "status": call.status if call else "error",
            "skipped": self.skipped,
            "text": self.text if self.ok else None,
        }
        if call is not None:
            data.update(
                call_id=call.id,
                model=f"{call.provider}:{call.model}",
                usage=call.usage.as_dict(),
                cost=decimal_str(call.cost),
                currency=call.currency,
                duration_ms=call.duration_ms,
            )
        if self.error is not None:
            data["error"] = {"message": self.error, "kind": call.error_kind if call else None}
        return data


@dataclass
class BatchSummary:
    batch_id: str
    total: int
    results: list[ItemResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[ItemResult]:
        return sorted((r for r in self.results if not r.ok), key=lambda r: r.item.line)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    def cost_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for r in self.results:
            if r.call and r.call.cost is not None and not r.skipped and r.call.status != "cached":
                currency = r.call.currency or "?"
                totals[currency] = totals.get(currency, Decimal(0)) + r.call.cost
        return totals

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return int(ExitCode.INTERRUPTED)
        failed = self.failed
        return int(failed[0].exit_code or ExitCode.UNAVAILABLE) if failed else 0


def parse_items(
    text: str, defaults: RunOptions, prompt: PromptVersion | None = None
) -> list[BatchItem]:
    """JSON lines or plain lines → items (blank lines and `#` comments skipped).

    With a saved `prompt`, each item fills its template: a JSON line's `vars`
    object, or a plain line as the value of the template's only variable.
    """
    items: list[BatchItem] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            item = _json_item(line, number, defaults, prompt)
        elif prompt is not None:
            names = prompt.variables
            if len(names) != 1:
                raise UsageError(
                    f"Line {number} is plain text, but {prompt.ref} has "
                    f"{len(names)} variables ({', '.join(names) or 'none'}).",
                    'With --prompt, write JSON lines: {"id": "a1", "vars": {...}}.',
                )
            item = _prompt_item(
                f"line-{number}",
                number,
                replace(defaults, tags=dict(defaults.tags)),
                prompt,
                {names[0]: line},
            )
        else:
            item = BatchItem(
                f"line-{number}", number, replace(defaults, prompt=line, tags=dict(defaults.tags))
            )
        if item.key in seen:
            raise UsageError(
                f"Line {number}: the id {item.key!r} is used twice.", "Give every item its own id."
            )
        seen.add(item.key)
        items.append(item)
    if not items:
        raise UsageError(
            "The batch file has no prompts.",
            "Write one prompt per line, or JSON lines with a prompt field.",
        )
    return items


def _prompt_item(
    key: str, number: int, options: RunOptions, prompt: PromptVersion, variables: dict[str, str]
) -> BatchItem:
    from ..prompts import apply_prompt

    try:
        filled, unused = apply_prompt(options, prompt, variables)
    except UsageError as exc:
        hint = 'Give them in the line\'s "vars".' if exc.message.startswith("Missing") else exc.hint
        raise UsageError(f"Line {number}: {exc.message}", hint) from None
    return BatchItem(key, number, filled, tuple(unused))


def _json_item(
    line: str, number: int, defaults: RunOptions, saved: PromptVersion | None = None
) -> BatchItem:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"Line {number} is not valid JSON ({exc.msg}).",
            "Fix it, or write the prompt as plain text.",
        ) from None
    except RecursionError:
        raise UsageError(
            f"Line {number} is JSON nested too deeply.",
            'Write {"prompt": "..."}, or the prompt as plain text.',
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"Line {number} is JSON but not an object.", 'Write {"prompt": "..."}.')
    unknown = set(data) - ITEM_FIELDS
    if unknown:
        raise UsageError(
            f"Line {number} has unknown fields: {', '.join(sorted(unknown))}.",
            f"Known fields: {', '.join(sorted(ITEM_FIELDS))}.",
        )
    prompt = data.get("prompt")
    if saved is not None:
        if "prompt" in data or "system" in data:
            raise UsageError(
                f"Line {number} has its own {'prompt' if 'prompt' in data else 'system'},"
                f" and --prompt {saved.ref} gives it.",
                'With --prompt, a line gives "vars" (and id, model, tags…), not the text.',
            )
        prompt = ""
    elif "vars" in data:
        raise UsageError(
            f"Line {number} has vars, but no saved prompt was given.",
            "Add --prompt NAME to fill a saved prompt's template with them.",
        )
    elif not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(
            f"Line {number} has no prompt.", 'Each JSON line needs a non-empty "prompt".'
        )

    def typed(name: str, kind: type | tuple[type, ...]) -> Any:
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise UsageError(
                f"Line {number}: {name} has the wrong type.", f"Check the {name!r} field."
            )
        if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN, Infinity
            raise UsageError(f"Line {number}: {name} is {value}, not a finite number.")
        return value

    tags = typed("tags", dict) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise UsageError(
            f"Line {number}: tags must map strings to strings.", 'e.g. "tags": {"client": "acme"}.'
        )
    key = data.get("id")
    key = str(key) if key is not None else f"line-{number}"
    options = replace(
        defaults,
        prompt=prompt,
        model=typed("model", str) or defaults.model,
        system=typed("system", str) if "system" in data else defaults.system,
        max_tokens=typed("max_tokens", int) if "max_tokens" in data else defaults.max_tokens,
        temperature=float(typed("temperature", (int, float)))
        if data.get("temperature") is not None
        else defaults.temperature,
        project=typed("project", str) or defaults.project,
        tags={**defaults.tags, **tags},
    )
    if saved is not None:
        from ..prompts import vars_from_json

        variables = vars_from_json(data.get("vars", {}), f"Line {number}: vars")
        return _prompt_item(key, number, options, saved, variables)
    return BatchItem(key, number, options)


def batch_id_for(content: bytes, defaults: RunOptions) -> str:
    """The same file run with the same settings is the same batch."""
    digest = hashlib.sha256(content)
    digest.update(
        json.dumps(
            [
                defaults.model,
                defaults.system,
                defaults.max_tokens,
                defaults.temperature,
                defaults.project,
                sorted(defaults.tags.items()),
            ],
            default=str,
        ).encode()
    )
    if defaults.prompt_name:  # another version of the prompt is another batch
        digest.update(f"\0{defaults.prompt_name}@{defaults.prompt_version}".encode())
    return digest.hexdigest()[:20]


class BatchRunner:
    def __init__(
        self,
        engine: Engine,
        items: list[BatchItem],
        batch_id: str,
        *,
        concurrency: int = 4,
        on_result: Callable[[ItemResult], None] = lambda _: None,
    ) -> None:
        self.engine = engine
        self.items = items
        self.batch_id = batch_id
        self.concurrency = max(1, concurrency)
        self.on_result = on_result
        self.stop = threading.Event()

    def run(self) -> BatchSummary:
        summary = BatchSummary(self.batch_id, len(self.items))
        done = self.engine.ledger.batch_results(self.batch_id)
        pending: list[BatchItem] = []
        for item in self.items:
            previous = done.get(item.key)
            if previous is not None:
                self._emit(
                    summary, ItemResult(item, previous, previous.response_text or "", skipped=True)
                )
            else:
                pending.append(item)
        try:
            self._run_pending(pending, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        return summary

    def _run_pending(self, pending: Iterable[BatchItem], summary: BatchSummary) -> None:
        queue = list(pending)
        with ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix="tokencli-batch"
        ) as pool:
            running: dict[Future[ItemResult], BatchItem] = {}
            try:
                while queue or running:
                    while queue and len(running) < self.concurrency and not self.stop.is_set():
                        item = queue.pop(0)
                        running[pool.submit(self._one, item)] = item
                    if not running:
                        break
                    finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.pop(future)
                        self._emit(summary, future.result())
            except KeyboardInterrupt:
                # Stop handing out items; calls in flight stop at their next token.
                self.stop.set()
                for future in list(running):
                    self._emit(summary, future.result())
                raise

    def _one(self, item: BatchItem) -> ItemResult:
        def guard(_text: str) -> None:
            if self.stop.is_set():
                raise Interrupted("The batch was interrupted.")

        options = replace(item.options, batch_id=self.batch_id, batch_item=item.key)
        try:
            result = self.engine.run(options, guard)
        except CallFailed as failed:
            return _failed(item, failed.error, failed.call)
        except Exception as exc:
            return _failed(item, exc, None)
        return ItemResult(item, result.call, result.text)

    def _emit(self, summary: BatchSummary, result: ItemResult) -> None:
        summary.results.append(result)
        self.on_result(result)


def _failed(item: BatchItem, error: Exception, call: Call | None) -> ItemResult:
    """An item that failed; a bug in one item must not stop the others."""
    if isinstance(error, TokencliError):
        return ItemResult(item, call, "", error=str(error), exit_code=int(error.exit_code))
    return ItemResult(item, call, "", error=f"internal error: {error}", exit_code=int(ExitCode.BUG))
