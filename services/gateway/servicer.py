"""npanel.gateway.v1.TokenService, served inside the gateway.

Its methods take the authenticated caller instead of a gRPC context: the
gateway's policy has already admitted the call (admin role) by the time they run.
"""

from __future__ import annotations

from npanel.api.v1.options_pb2 import Role
from npanel.common.errors import InvalidArgument
from npanel.common.timestamps import timestamp

from .backends import LocalMethod
from .store import TokenStore
from .tokens import Token, check_role
from .v1 import gateway_pb2 as pb

SERVICE = "/npanel.gateway.v1.TokenService"




def token_pb(t: Token) -> pb.Token:
    return pb.Token(name=t.name, role=Role.Value(t.role.upper()), prefix=t.prefix,
                    created_at=timestamp(t.created_at), expires_at=timestamp(t.expires_at),
                    revoked_at=timestamp(t.revoked_at), last_used_at=timestamp(t.last_used_at),
                    created_by=t.created_by)


class TokenMethods:
    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def table(self) -> dict[str, LocalMethod]:
        return {f"{SERVICE}/CreateToken": self.create, f"{SERVICE}/ListTokens": self.list,
                f"{SERVICE}/RevokeToken": self.revoke, f"{SERVICE}/WhoAmI": self.whoami}

    async def create(self, request: pb.CreateTokenRequest, caller: Token) -> pb.CreateTokenResponse:
        role = check_role(request.role)
        if request.ttl_days > 3650:
            raise InvalidArgument("ttl_days", request.ttl_days, "must be 0 (never expires) to 3650")
        token, secret = await self._store.create(request.name, role, request.ttl_days, caller.name)
        return pb.CreateTokenResponse(token=token_pb(token), secret=secret)

    async def list(self, request: pb.ListTokensRequest, caller: Token) -> pb.ListTokensResponse:
        return pb.ListTokensResponse(tokens=map(token_pb, await self._store.list(request.include_revoked)))

    async def revoke(self, request: pb.RevokeTokenRequest, caller: Token) -> pb.Token:
        if not request.reason.strip():
            raise InvalidArgument("reason", request.reason, "a reason is required")
        return token_pb(await self._store.revoke(request.name, request.reason, caller.name))

    async def whoami(self, request: pb.WhoAmIRequest, caller: Token) -> pb.Token:
        return token_pb(caller)
