"""Pure algorithms, no I/O: scoring, batch assignment, route planning (issues #4, #5)."""
