"""Safety: SOS alerts and live-trail anomalies for the dispatchers (docs/safety.md)."""
