"""Per-client token buckets, and who the client is behind a trusted proxy."""

from __future__ import annotations

import ipaddress
import time
from typing import Sequence

from cachetools import LRUCache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case
    the right-most address in X-Forwarded-For that is not itself a trusted proxy."""

    def __init__(self, trusted: Sequence[Network]):
        self.trusted = tuple(trusted)
        self._known: LRUCache = LRUCache(maxsize=4096)

    def is_trusted(self, address: str) -> bool:
        found = self._known.get(address)
        if found is None:
            try:
                ip = ipaddress.ip_address(address)
                found = any(ip in net for net in self.trusted)
            except ValueError:
                found = False
            self._known[address] = found
        return found

    def __call__(self, scope: dict) -> str:
        peer = (scope.get("client") or ("unknown", 0))[0]
        if not self.trusted or not self.is_trusted(peer):
            return peer
        forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
        hops = [h.strip() for v in forwarded for h in v.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer


class NetworkAllow:
    """Whether a client (as :class:`ClientAddress` sees it) is inside the allowed networks:
    the gate of operator routes such as ``/metrics``."""

    def __init__(self, allowed: Sequence[Network], client: ClientAddress):
        self.allowed = tuple(allowed)
        self.client = client

    def __call__(self, scope: dict) -> bool:
        try:
            ip = ipaddress.ip_address(self.client(scope))
        except ValueError:
            return False
        return any(ip in net for net in self.allowed)


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_clients: int = 200_000):
        self.rate = rate
        self.burst = float(burst)
        self.buckets: LRUCache = LRUCache(maxsize=max_clients)  # client -> (tokens, time)

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 when the request may go; else seconds until a token is there."""
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            return 0.0
        self.buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate
