"""Doorstep's shared plumbing: settings, stores (PostgreSQL, Redis, embedded servers),
migrations and the command line. Everything else in the project stands on this package;
it imports none of them (the CLI imports ``api`` lazily, to serve it)."""

__version__ = "0.1.0"
