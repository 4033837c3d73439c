"""A local TLS server that checks bearer tokens the way the Durable Task Scheduler does.

It serves a few ``TaskHubSidecarService`` RPCs (``GetInstance`` and a
``GetWorkItems`` stream that ends at once, so workers reconnect) behind a
server interceptor that records every call's headers and refuses, with
UNAUTHENTICATED, calls without a bearer token or with one the fake credential
did not issue, revoked or let expire.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dtask_async._proto import Timestamp, pb, pb_grpc
from dtask_async.transport import _auth


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and its key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


@pytest.fixture(scope="session")
def certificate() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


class Clock:
    """The time the token cache and the server both see; tests move it forward."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_auth, "time", fake)
    return fake


@dataclass
class AccessToken:
    token: str
    expires_on: int


class FakeCredential:
    """An ``azure.identity.aio``-shaped credential that counts its token requests.

    Tokens are ``tok-1``, ``tok-2`` ... and live ``lifetime`` seconds of :class:`Clock`.
    """

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []
        self.issued: dict[str, float] = {}
        self.revoked: set[str] = set()
        self.closed = 0

    @property
    def calls(self) -> int:
        return len(self.scopes)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        await asyncio.sleep(0)  # callers overlap while a token is on its way
        token = f"tok-{len(self.scopes)}"
        expires_on = self.clock.time() + self.lifetime
        self.issued[token] = expires_on
        return AccessToken(token, int(expires_on))

    async def close(self) -> None:
        self.closed += 1

    def refusal(self, authorization: str | None) -> str | None:
        """Why the server refuses this ``authorization`` header, or ``None``."""
        if authorization is None:
            return "the call has no authorization header"
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return "the authorization header is not a bearer token"
        if token not in self.issued:
            return f"unknown token {token}"
        if token in self.revoked:
            return f"token {token} was revoked"
        if self.issued[token] <= self.clock.time():
            return f"token {token} has expired"
        return None


@dataclass
class Call:
    """One call the server received."""

    method: str
    headers: dict[str, str]
    refused: str | None

    @property
    def token(self) -> str | None:
        value = self.headers.get("authorization")
        return value.removeprefix("Bearer ") if value else None


@dataclass
class Recorder:
    """Every call the server received, and a way to wait for one."""

    calls: list[Call] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def add(self, call: Call) -> None:
        async with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 10) -> None:
        """Wait until ``predicate(calls)`` holds."""

        async def satisfied() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self.calls))

        await asyncio.wait_for(satisfied(), timeout)


class TokenCheckingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records each call and refuses the ones without a valid bearer token."""

    def __init__(self, recorder: Recorder, credential: FakeCredential) -> None:
        self.recorder = recorder
        self.credential = credential

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        headers = dict(details.invocation_metadata)
        refusal = self.credential.refusal(headers.get("authorization"))
        method = details.method.rsplit("/", 1)[-1]
        await self.recorder.add(Call(method, headers, refusal))
        handler = await continuation(details)
        if refusal is None or handler is None:
            return handler
        return _refusing(handler, refusal)


def _refusing(handler: Any, reason: str) -> Any:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        yield None  # never reached: abort raises

    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, **options)
    return grpc.unary_unary_rpc_method_handler(unary, **options)


class Servicer(pb_grpc.TaskHubSidecarServiceServicer):  # type: ignore[misc]
    """Just enough of the service for a client call and a worker's stream."""

    async def GetInstance(self, request: Any, context: Any) -> Any:
        now = Timestamp()
        now.GetCurrentTime()
        state = pb.OrchestrationState(
            instanceId=request.instanceId,
            name="hello",
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED,
            createdTimestamp=now,
            lastUpdatedTimestamp=now,
        )
        return pb.GetInstanceResponse(exists=True, orchestrationState=state)

    async def GetWorkItems(self, request: Any, context: Any) -> AsyncIterator[Any]:
        # End the stream at once: the worker reconnects, and each reconnection
        # is a new call with its own headers.
        return
        yield


@dataclass
class TlsServer:
    """The running server."""

    address: str
    port: int
    credential: FakeCredential
    recorder: Recorder
    certificate: Certificate


@pytest.fixture
async def tls_server(certificate: Certificate, clock: Clock) -> AsyncIterator[TlsServer]:
    credential = FakeCredential(clock)
    recorder = Recorder()
    server = grpc.aio.server(interceptors=[TokenCheckingInterceptor(recorder, credential)])
    pb_grpc.add_TaskHubSidecarServiceServicer_to_server(Servicer(), server)
    port = server.add_secure_port(
        "localhost:0",
        grpc.ssl_server_credentials([(certificate.key_pem, certificate.cert_pem)]),
    )
    await server.start()
    try:
        yield TlsServer(
            address=f"https://localhost:{port}",
            port=port,
            credential=credential,
            recorder=recorder,
            certificate=certificate,
        )
    finally:
        await server.stop(grace=None)
