"""What the ledger says: reports, forecasts and (next) budgets, refill and alerts.

- `period`: what `--month/--since/--until/--last/--tz` mean, as exact UTC bounds;
- `model`: the report as plain dataclasses (what every format renders);
- `report`: the report from the ledger's hourly rollups (plus the raw rows of
  partial hours), never a Python scan of every call;
- `formats`: JSON, CSV, Markdown and a terminal chart of daily spend;
- `html` (with `svg`): one self-contained HTML file with inline SVG charts;
- `display`: the figures as people read them, shared by Markdown and HTML;
- `forecast` (arithmetic) and `outlook` (the month's forecast and budgets from the ledger).
"""
