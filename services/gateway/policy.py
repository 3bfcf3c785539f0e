"""Who may call what: the one place the gateway decides, for gRPC and HTTP alike.

Order: the client IP's rate limit (cheap, before any lookup), the bearer token,
the token's rate limit, the method's required role, then its feature flag. An
unauthenticated caller therefore learns nothing about which features exist.
"""

from __future__ import annotations

import math
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from npanel.common.errors import NotFound, PermissionDenied, ResourceExhausted, Unauthenticated

from .ratelimit import RateLimiter
from .routes import ROLE_NAMES, Route
from .store import TokenCache
from .tokens import Token


class FlagLookup(Protocol):
    def is_enabled(self, flag: str, account_id: str | None = None) -> bool: ...


class FeatureDisabled(NotFound):
    def __init__(self, flag: str) -> None:
        self.flag = flag
        Exception.__init__(self, f"Feature {flag} is not enabled")


def bearer(authorization: str) -> str | None:
    scheme, _, secret = authorization.strip().partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


class Policy:
    def __init__(self, tokens: TokenCache, flags: FlagLookup, ip_limit: RateLimiter,
                 token_limit: RateLimiter, registry: CollectorRegistry) -> None:
        self._tokens = tokens
        self._flags = flags
        self._ip_limit = ip_limit
        self._token_limit = token_limit
        self._limited = Counter("npanel_api_rate_limited_total", "Requests refused by a rate limit.",
                                ["scope"], registry=registry)

    async def admit(self, route: Route, authorization: str, client_ip: str,
                    account_id: str | None = None) -> Token:
        self._limit(self._ip_limit, client_ip, "ip", f"client {client_ip}")
        secret = bearer(authorization)
        if secret is None:
            raise Unauthenticated("missing bearer token: send 'authorization: Bearer <token>' "
                                  "(create one with `npanel tokens create`)")
        token = await self._tokens.principal(secret)
        if token is None:
            raise Unauthenticated("the bearer token is unknown, expired or revoked")
        self._limit(self._token_limit, token.name, "token", f"token {token.name!r}")
        if token.role_value < route.role:
            raise PermissionDenied(f"{route.full_method} needs the {route.role_name} role; token "
                                   f"{token.name!r} has {token.role}")
        if route.feature_flag and not self._flags.is_enabled(route.feature_flag, account_id):
            raise FeatureDisabled(route.feature_flag)
        return token

    def _limit(self, limiter: RateLimiter, key: str, scope: str, who: str) -> None:
        wait = limiter.acquire(key)
        if wait > 0:
            self._limited.labels(scope).inc()
            raise ResourceExhausted(
                f"rate limit of {limiter.per_minute} requests/min for {who} reached; retry in "
                f"{math.ceil(wait)} s", wait)


__all__ = ["ROLE_NAMES", "FeatureDisabled", "Policy", "bearer"]
