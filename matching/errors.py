"""Errors of the matching package: inputs that break a rule, named by field."""

from __future__ import annotations

from doorstep.errors import InvalidInput


class MatchingError(InvalidInput):
    """Root of every ``matching`` error: a job, candidate or stored decision is unusable."""

    code = "invalid_matching_input"


class PlanError(MatchingError, ValueError):
    """A planning problem breaks a rule (``matching.planner``); ``field`` names the input."""

    code = "invalid_plan_input"
