"""Where the server is and whether to use TLS."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("DEFAULT_ADDRESS", "Target", "parse_address")

DEFAULT_ADDRESS = "localhost:8080"
"""The DTS emulator's port, which ``dtask-async emulator`` also serves by default."""

_SCHEMES = {"http": False, "grpc": False, "https": True, "grpcs": True}


@dataclass(frozen=True)
class Target:
    """A parsed server address.

    Attributes:
        host_port: ``host:port`` as gRPC expects it (IPv6 hosts in brackets).
        secure: whether the channel uses TLS.
        original: the address as the user gave it, for error messages.
    """

    host_port: str
    secure: bool
    original: str

    def __str__(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host_port}"


def parse_address(address: str | None, secure_channel: bool | None = None) -> Target:
    """Parse a server address.

    Accepts ``http://``, ``https://``, ``grpc://``, ``grpcs://`` and bare
    ``host:port``; ``https``/``grpcs`` mean TLS, ``http``/``grpc`` plaintext. A
    bare address uses TLS only when ``secure_channel`` is true. Without a port,
    443 is used for TLS and 80 otherwise. A path after the host is ignored.

    Args:
        address: the address; ``None`` or empty means :data:`DEFAULT_ADDRESS`.
        secure_channel: ``True`` forces TLS; otherwise the scheme decides (a bare
            address is plaintext).

    Raises:
        ValueError: the address has an unknown scheme, no host or a bad port.
    """
    original = address if address else DEFAULT_ADDRESS
    text = original.strip()
    scheme = None
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r} in server address {original!r}; "
                "use http://, https://, grpc://, grpcs:// or host:port"
            )
    text = text.split("/", 1)[0]
    if not text:
        raise ValueError(f"server address {original!r} has no host")
    host, port = _split_host_port(text, original)
    secure = _SCHEMES[scheme] if scheme else bool(secure_channel)
    if secure_channel is True:
        secure = True
    if port is None:
        port = 443 if secure else 80
    return Target(host_port=f"{host}:{port}", secure=secure, original=original)


def _split_host_port(text: str, original: str) -> tuple[str, int | None]:
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise ValueError(f"server address {original!r} has an unclosed '['")
        host, rest = text[: end + 1], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address without a port
        return f"[{text}]", None
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"server address {original!r} has no host")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"server address {original!r} has an invalid port {port_text!r}")
    return host, int(port_text)
