"""Making calls: the engine's pipeline and what it leans on.

- `engine`: resolve → guards → pending row → provider → finished row → observers;
- `usage`: the normalized token counts every provider reports into;
- `retry`, `limits`, `cache`, `signals`: backoff, shared rate limits, the
  response cache and deferred Ctrl-C around ledger writes;
- `batch`: many prompts, several at a time, resumable.
"""
