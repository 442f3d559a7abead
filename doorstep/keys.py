"""Every Redis key and channel name, built in one place with one prefix.

Keys that belong to a city carry it as a hash tag (``{city}``) so that, on a Redis
Cluster, all of a city's keys live in one slot and can be used together in a
pipeline or script.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to a deployment's prefix (``DOORSTEP_REDIS_PREFIX``)."""

    prefix: str = "ds:"

    def revoked_token(self, jti: str) -> str:
        """Marks an access token as revoked until it would have expired anyway."""
        return f"{self.prefix}revoked:{jti}"

    def inactive_user(self, user_id: int) -> str:
        """Set while an account is frozen or closed, so its live access tokens stop working."""
        return f"{self.prefix}inactive-user:{user_id}"

    def login_attempts(self, phone: str) -> str:
        """Counts failed logins for a phone number in the current window."""
        return f"{self.prefix}login-fail:{phone}"

    def city(self, city_id: str, name: str) -> str:
        """A per-city key, hash-tagged by city."""
        return f"{self.prefix}{{{city_id}}}:{name}"
