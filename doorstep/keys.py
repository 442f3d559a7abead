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
        """Marks an access token as revoked until it would have expired anyway (a cache
        of PostgreSQL's ``revoked_access_tokens``; see :mod:`accounts.revocations`)."""
        return f"{self.prefix}revoked:{jti}"

    def token_version(self, user_id: int) -> str:
        """The token version a user's access tokens must carry, after a freeze or close
        (a cache of ``users.token_version``)."""
        return f"{self.prefix}token-version:{user_id}"

    def auth_cache(self) -> str:
        """The marker that the two caches above are loaded from PostgreSQL into this Redis:
        its value is the Redis server's run id. Missing (Redis lost its data) or from
        another run (restarted from an older snapshot): reload before trusting them."""
        return f"{self.prefix}auth-cache"

    def city(self, city_id: str, name: str) -> str:
        """A per-city key, hash-tagged by city."""
        return f"{self.prefix}{{{city_id}}}:{name}"

    def city_tag(self, city_id: str) -> str:
        """The prefix every key of one city starts with (Lua scripts append to it)."""
        return f"{self.prefix}{{{city_id}}}:"

    def geo(self, city_id: str, state: str) -> str:
        """Geo index of the city's fresh workers in one state (available, busy, unavailable)."""
        return f"{self.prefix}{{{city_id}}}:geo:{state}"

    def worker_state(self, city_id: str, worker_id: int) -> str:
        """Hash: the worker's last fix, sequence number and state."""
        return f"{self.prefix}{{{city_id}}}:w:{worker_id}"

    def presence(self, city_id: str) -> str:
        """Sorted set: worker id → server time (ms) of their last fix."""
        return f"{self.prefix}{{{city_id}}}:presence"

    def trail(self, city_id: str, worker_id: int) -> str:
        """Stream: the worker's recent fixes, capped."""
        return f"{self.prefix}{{{city_id}}}:trail:{worker_id}"

    def eta_buckets(self, city_id: str) -> str:
        """Hash: the city's learned ETA histograms, field ``"hour:band"`` → JSON counts
        (tracking/eta_calibration.py). Rebuilt from PostgreSQL's orders when missing."""
        return f"{self.prefix}{{{city_id}}}:eta:buckets"

    def eta_layout(self, city_id: str) -> str:
        """The layout of the city's ETA histograms (``eta_calibration.layout``); missing or
        of another layout: the hash is rebuilt before it is trusted or added to."""
        return f"{self.prefix}{{{city_id}}}:eta:layout"

    def eta_learned(self, city_id: str, order_id: int) -> str:
        """Marks an order's trip as learned (an event delivered twice counts once)."""
        return f"{self.prefix}{{{city_id}}}:eta:learned:{order_id}"

    def feed(self, city_id: str) -> str:
        """Channel: the dispatcher feed of a city."""
        return f"{self.prefix}{{{city_id}}}:feed"

    def order_channel(self, city_id: str, order_id: int) -> str:
        """Channel: live updates of one order (worker position, ETA, status)."""
        return f"{self.prefix}{{{city_id}}}:order:{order_id}"

    def worker_socket(self, worker_id: int) -> str:
        """Which process and connection hold the worker's live socket: ``proc:conn``."""
        return f"{self.prefix}socket:w:{worker_id}"

    def revocations(self) -> str:
        """Channel: a user whose tokens were revoked (account frozen or closed): every
        process closes that user's live sockets."""
        return f"{self.prefix}revoked-users"

    def process_channel(self, process_id: str) -> str:
        """Channel: control messages to one server process (kick a socket, push a message)."""
        return f"{self.prefix}proc:{process_id}"

    def user_channel(self, user_id: int) -> str:
        """Channel: live messages to one user's ``/v1/me/socket`` (inbox notifications)."""
        return f"{self.prefix}user:{user_id}"
