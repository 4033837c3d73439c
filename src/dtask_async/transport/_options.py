"""Channel settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ("DEFAULT_MAX_MESSAGE_BYTES", "ChannelOptions")

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ChannelOptions:
    """How the gRPC channel to the server behaves."""

    max_send_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest message this side sends; larger requests fail before they are sent."""

    max_receive_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest message this side accepts from the server."""

    keepalive_time: float = 30.0
    """Seconds between HTTP/2 keepalive pings, so dead connections are noticed."""

    keepalive_timeout: float = 10.0
    """Seconds to wait for a keepalive ping's answer before the connection is dropped."""

    retry_unavailable_attempts: int = 4
    """Attempts (first try included) for calls that fail with UNAVAILABLE before
    any response arrives; 1 disables transport retries."""

    extra: tuple[tuple[str, Any], ...] = field(default=())
    """Raw ``grpc.*`` channel arguments, applied last."""

    def __post_init__(self) -> None:
        for name in ("max_send_message_bytes", "max_receive_message_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("keepalive_time", "keepalive_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.retry_unavailable_attempts < 1:
            raise ValueError("retry_unavailable_attempts must be at least 1")

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The options as gRPC channel arguments."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout * 1000)),
            # grpc-core waits for any ping's answer for ping_timeout_ms (a minute by
            # default), not keepalive_timeout_ms: without this a silent connection is
            # noticed only after a minute.
            ("grpc.http2.ping_timeout_ms", int(self.keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5000),
        ]
        if self.retry_unavailable_attempts > 1:
            config = {
                "methodConfig": [
                    {
                        "name": [{"service": "TaskHubSidecarService"}],
                        "retryPolicy": {
                            "maxAttempts": min(self.retry_unavailable_attempts, 5),
                            "initialBackoff": "0.1s",
                            "maxBackoff": "1s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ]
            }
            options.append(("grpc.service_config", json.dumps(config)))
            options.append(("grpc.enable_retries", 1))
        else:
            options.append(("grpc.enable_retries", 0))
        options.extend(self.extra)
        return options
