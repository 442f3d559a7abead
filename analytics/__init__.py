"""Analytics: dashboards over rollups that a periodic job refreshes (docs/analytics.md)."""
