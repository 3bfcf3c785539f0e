"""Domain errors shared by every service. Pure: no grpc, no I/O.

Domain code raises these; the server interceptor turns them into gRPC status
codes in one place (`npanel.common.interceptors.status_for`), and the gateway
turns those into HTTP statuses the way grpc-gateway does.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: the message is shown to the caller as is."""


class InvalidArgument(DomainError):
    """A request field has a value that can never be accepted."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {expected}")


class NotFound(DomainError):
    def __init__(self, kind: str, name: str, hint: str = "") -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} not found" + (f"; {hint}" if hint else ""))


class FailedPrecondition(DomainError):
    """The request is valid but the system is not in a state to accept it."""


class Unavailable(DomainError):
    """A dependency (usually the database) is down; retrying later may work."""


class Unauthenticated(DomainError):
    """No valid credentials came with the request."""


class PermissionDenied(DomainError):
    """The caller is known but its role does not allow the request."""


class ResourceExhausted(DomainError):
    """A rate limit refused the request; retrying after `retry_after_s` may work."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
