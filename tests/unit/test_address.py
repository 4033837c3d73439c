from __future__ import annotations

import pytest

from dtask_async.transport import DEFAULT_ADDRESS, parse_address


@pytest.mark.parametrize(
    ("address", "secure_channel", "host_port", "secure"),
    [
        (None, None, "localhost:8080", False),
        ("localhost:4001", None, "localhost:4001", False),
        ("localhost:4001", True, "localhost:4001", True),
        ("http://localhost:8080", None, "localhost:8080", False),
        ("http://localhost:8080", False, "localhost:8080", False),
        ("grpc://10.0.0.1:50051", None, "10.0.0.1:50051", False),
        (
            "https://my-scheduler.westus2.durabletask.io",
            None,
            "my-scheduler.westus2.durabletask.io:443",
            True,
        ),
        ("https://sched.io:8443/", None, "sched.io:8443", True),
        ("grpcs://sched.io", None, "sched.io:443", True),
        ("HTTPS://sched.io", None, "sched.io:443", True),
        ("[::1]:9000", None, "[::1]:9000", False),
        ("http://[::1]", None, "[::1]:80", False),
        ("myhost", None, "myhost:80", False),
    ],
)
def test_parse_address(
    address: str | None, secure_channel: bool | None, host_port: str, secure: bool
) -> None:
    target = parse_address(address, secure_channel)
    assert target.host_port == host_port
    assert target.secure is secure
    assert target.original == (address or DEFAULT_ADDRESS)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("ftp://host:1", "unsupported scheme 'ftp'"),
        ("http://", "has no host"),
        ("host:abc", "invalid port 'abc'"),
        ("host:70000", "invalid port '70000'"),
        ("[::1:80", "unclosed"),
    ],
)
def test_bad_addresses_name_the_problem(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(address)
