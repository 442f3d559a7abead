"""Pure, seeded demo content (catalog, workers, teams, customers) for `doorstep seed`."""
