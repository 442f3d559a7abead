-- The former ETA model (mean and sd of the log ratio per city and hour) kept its learning in
-- eta_stats. The calibrated ranges (docs/dispatch.md#eta-ranges-that-hold) keep theirs as
-- hot state in Redis, rebuilt from the arrived orders; nothing has read or written this
-- table since, and nothing it held is needed to rebuild them.
DROP TABLE IF EXISTS eta_stats;
