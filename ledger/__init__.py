"""The double-entry ledger: pure rules (rules.py) and the PostgreSQL store (store.py)."""
