"""Data files the simulator ships (see SOURCES.md)."""
