"""API tokens: generation, hashing and the rules for using one. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from npanel.common.errors import InvalidArgument

from .routes import ROLE_NAMES

PREFIX = "npn_"
_NAME = re.compile(r"^[a-z][a-z0-9_.@-]{0,63}$")
ROLES_BY_NAME = {name: value for value, name in ROLE_NAMES.items()}


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    # surrogateescape: aiohttp decodes header bytes that are not UTF-8 that way; they get
    # hashed as the bytes they were (and match no token) instead of failing the request.
    return hashlib.sha256(secret.encode(errors="surrogateescape")).digest()


def shown_prefix(secret: str) -> str:
    return secret[: len(PREFIX) + 6]


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidArgument("name", name, "a token name is lowercase letters, digits and _ . @ - "
                              "(1..64, starting with a letter)")


def check_role(role: int) -> str:
    if role not in ROLE_NAMES:
        raise InvalidArgument("role", role, "must be VIEWER, OPERATOR or ADMIN")
    return ROLE_NAMES[role]


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def role_value(self) -> int:
        return ROLES_BY_NAME[self.role]

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
