"""Locations: fix ingest and validation, geo index, presence, trails, ETA, live fan-out (issue #3)."""
