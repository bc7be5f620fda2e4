"""What a call costs: exact money from the price table and the config's overrides.

- `cost`: the cost of one usage record (genai-prices, `[prices]`, hourly local models);
- `index`: a flattened, cached view of the bundled price table for `models`;
- `counting`: offline token counts and input-cost estimates for `count` and `--dry-run`.
"""
