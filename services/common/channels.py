"""Client channel options shared by npanel's gRPC clients (probes, flag client, gateway).

Two grpc-core traps, both measured here (grpc 1.85):
- `grpc.min_reconnect_backoff_ms` is not a backoff: grpc-core takes it as the
  least time a connection attempt gets (MIN_CONNECT_TIMEOUT, 20 s by default).
  At 100 ms, a slow connection on a loaded machine failed the call waiting on it
  ("tcp handshaker shutdown"). Only the initial and maximum backoff are set.
- `grpc.keepalive_timeout_ms` alone does not bound the wait for a ping's ack:
  `grpc.http2.ping_timeout_ms` (60 s by default) does. And without
  `grpc.http2.max_pings_without_data = 0` a client stops pinging after two pings
  on an idle stream.
"""

from __future__ import annotations


def fast_reconnect(max_backoff_ms: int) -> tuple[tuple[str, int], ...]:
    """Reconnect ~100 ms after a peer comes back, not after gRPC's 1 s..120 s backoff."""
    return (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", max_backoff_ms))


def keepalive(period_s: float, timeout_s: float | None = None) -> tuple[tuple[str, int], ...]:
    """An HTTP/2 ping every `period_s`; the connection dropped when one is not acked
    within `timeout_s` (default: `period_s`). Nothing when `period_s` is 0.

    The server must permit pings this often: npanel's servers allow one per 500 ms
    (server.py); gRPC's default server policy answers the third ping within 5 min
    on an idle stream with GOAWAY "too_many_pings".
    """
    if period_s <= 0:
        return ()
    period_ms, timeout_ms = int(period_s * 1000), int((timeout_s or period_s) * 1000)
    return (("grpc.keepalive_time_ms", period_ms), ("grpc.keepalive_timeout_ms", timeout_ms),
            ("grpc.http2.ping_timeout_ms", timeout_ms), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1))
