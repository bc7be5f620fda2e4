"""`tokencli compare`: prompts (inline texts, files, prompt versions) × models, side by side.

- `columns`: what a column is and where it comes from (the one seam to the prompt
  library: `resolve_prompt_column`), the `{{var}}` renderer, variables and inputs;
- `core`: the offline counts and estimates, the live runs, the statistics;
- `render`: the comparison as text, Markdown and HTML.

The saved comparisons live in `ledger.comparisons`.
"""
