"""API tokens in PostgreSQL; creation and revocation audited in their transaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg

from npanel.common import audit
from npanel.common.db import PoolStore
from npanel.common.errors import FailedPrecondition, NotFound

from .tokens import Token, check_name, digest, new_secret, shown_prefix

_COLUMNS = "name, role, prefix, created_at, created_by, expires_at, revoked_at, last_used_at"


def _token(row: asyncpg.Record) -> Token:
    return Token(**dict(row))


class TokenStore(PoolStore):
    service = "gateway"

    async def create(self, name: str, role: str, ttl_days: int, actor: str) -> tuple[Token, str]:
        check_name(name)
        secret = new_secret()
        expires = datetime.now(UTC) + timedelta(days=ttl_days) if ttl_days else None
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO api_tokens (name, role, token_sha256, prefix, created_by, expires_at)
                        VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
                    name, role, digest(secret), shown_prefix(secret), actor, expires)
            except asyncpg.UniqueViolationError as exc:
                raise FailedPrecondition(
                    f"a token named {name!r} exists; revoke it or choose another name") from exc
            assert row is not None
            await audit.record(conn, audit.AuditEntry(
                actor=actor, action="token.create", target_type="api_token", target_id=name,
                details={"role": role, "expires_at": expires}))
        return _token(row), secret

    async def list(self, include_revoked: bool) -> list[Token]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE $1 OR revoked_at IS NULL ORDER BY name",
            include_revoked)
        return [_token(r) for r in rows]

    async def revoke(self, name: str, reason: str, actor: str) -> Token:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1
                    RETURNING {_COLUMNS}""", name)
            if row is None:
                raise NotFound("token", name, "`npanel tokens list` shows the tokens")
            await audit.record(conn, audit.AuditEntry(
                actor=actor, action="token.revoke", target_type="api_token", target_id=name,
                details={"reason": reason}))
        return _token(row)

    async def lookup(self, secret: str) -> Token | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_sha256 = $1", digest(secret))
        return None if row is None else _token(row)

    async def touch(self, name: str) -> None:
        await self._pool.execute("UPDATE api_tokens SET last_used_at = now() WHERE name = $1", name)


class TokenCache:
    """Token lookups for every request, from memory for `ttl_s` seconds: a
    revoked or expired token stops working within that time."""

    def __init__(self, store: TokenStore, ttl_s: float = 2.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Token | None]] = {}
        self._touched: dict[str, float] = {}

    async def principal(self, secret: str) -> Token | None:
        now = time.monotonic()
        cached = self._entries.get(secret)
        if cached is None or now - cached[0] > self._ttl_s:
            if len(self._entries) > 10_000:  # bounded: unknown secrets are cached too
                self._entries.clear()
            cached = (now, await self._store.lookup(secret))
            self._entries[secret] = cached
        token = cached[1]
        if token is None or not token.usable(datetime.now(UTC)):
            return None
        if now - self._touched.get(token.name, 0.0) > 60:  # last_used_at: once a minute is enough
            self._touched[token.name] = now
            await self._store.touch(token.name)
        return token
