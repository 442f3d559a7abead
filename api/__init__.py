"""The HTTP and WebSocket surface: parse, authorize, call a domain package, encode."""
