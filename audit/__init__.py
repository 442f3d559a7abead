"""The tamper-evident audit log: a hash chain in PostgreSQL (docs/safety.md, Audit)."""
