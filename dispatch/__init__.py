"""Orders and their lifecycle: state machine, offers, assignment, overrides (issue #4)."""
