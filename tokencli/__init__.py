"""tokencli: one interface for every AI model, every call metered into a local SQLite ledger."""

__version__ = "0.1.0"
