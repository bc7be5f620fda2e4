"""The prompt library: named prompts in immutable, numbered versions, with labels.

A version holds a system part and a user part (`template`), both templates with
`{{name}}` variables (see `template`), and optionally the model and parameters
(max_tokens, temperature) it runs with by default. Saving text identical to the
latest version adds nothing. Labels such as `production` point at a version and
move; `latest` is implicit. A version that recorded calls used is never deleted,
only retired. The rows live in the ledger (`ledger.prompts` holds the SQL);
`files` reads and writes the TOML/YAML files a user keeps in git.

API (what `run --prompt`, `batch --prompt` and `compare` use):

- `resolve_prompt(ledger, ref) -> PromptVersion`: `ref` is `NAME` (the latest
  version), `NAME@3`, `NAME@production` or `NAME@latest`; an unknown prompt,
  version or label raises `UsageError` (exit 2). `ledger` may be None (no ledger
  file yet: every prompt is unknown).
- `PromptVersion(name, version, system, template, model, params, labels)`, frozen,
  also `note`, `created` (ledger timestamp), `retired`; `.ref` is `NAME@N`,
  `.variables` the names it uses, `.content_hash` its identity.
  `.render(variables) -> (system or None, user_text, unused_names)`: a missing
  variable raises `UsageError` naming it (and the hint `--var NAME=VALUE`);
  `unused_names` (sorted) are the given variables neither part uses, for a warning.
  `.params` holds only `max_tokens` (int) and `temperature` (float), when saved.
- `parse_vars(pairs, vars_file, stdin) -> dict[str, str]`: `--var KEY=VALUE`
  pairs over a vars file (a JSON object or KEY=VALUE lines; a bad line is named by
  number); `stdin` is a callable returning piped stdin's text, or None when nothing
  is piped, called only for a `--var KEY=-`.
- `vars_from_json(obj, where) -> dict[str, str]`: one JSON object of variables
  (a batch line's `vars`, a line of a JSON-lines vars file) checked and made text.
- `apply_prompt(run_options, version, variables) -> (run_options, unused)`: the
  options of one call of `version`, its model and parameters as defaults, the
  prompt's name and version recorded.
- `Template(text)`: `.names`, `.render(variables)`; an unclosed or malformed
  placeholder raises `UsageError` with its line.
"""

from .library import (
    PromptVersion,
    apply_prompt,
    parse_ref,
    resolve_prompt,
)
from .template import Template
from .variables import parse_vars, vars_from_json

__all__ = [
    "PromptVersion",
    "Template",
    "apply_prompt",
    "parse_ref",
    "parse_vars",
    "resolve_prompt",
    "vars_from_json",
]
