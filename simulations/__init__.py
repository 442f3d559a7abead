"""City simulator and load scenarios driving the public API only (issue #7)."""
