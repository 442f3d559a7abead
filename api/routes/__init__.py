"""Route modules, one per area of the API; each exposes a ``router``."""
