"""Bearer tokens over TLS against a server that checks them like the scheduler does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dtask_async import AuthenticationError, ServerUnavailableError, __version__
from dtask_async.azuremanaged import (
    DurableTaskSchedulerClient,
    DurableTaskSchedulerConnectionString,
    DurableTaskSchedulerWorker,
)
from dtask_async.client import OrchestrationStatus
from dtask_async.transport import ChannelOptions
from dtask_async.worker import ReconnectPolicy

from .conftest import Call, Clock, FakeCredential, TlsServer

SCOPE = "https://durabletask.io/.default"
FAST_RECONNECT = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, jitter=0)


def client_for(server: TlsServer, **kwargs: Any) -> DurableTaskSchedulerClient:
    options: dict[str, Any] = {
        "host_address": server.address,
        "taskhub": "orders",
        "token_credential": server.credential,
    }
    options.update(kwargs)
    return DurableTaskSchedulerClient(**options, root_certificates=server.certificate.cert_pem)


async def test_one_token_request_for_100_concurrent_calls(tls_server: TlsServer) -> None:
    async with client_for(tls_server) as client:
        states = await asyncio.gather(
            *(client.get_orchestration_state(f"i-{n}") for n in range(100))
        )
    assert all(s is not None and s.runtime_status is OrchestrationStatus.COMPLETED for s in states)
    assert tls_server.credential.scopes == [(SCOPE,)]
    calls = tls_server.recorder.of("GetInstance")
    assert len(calls) == 100
    for call in calls:
        assert call.refused is None
        assert call.headers["authorization"] == "Bearer tok-1"
        assert call.headers["taskhub"] == "orders"
        assert call.headers["x-user-agent"] == f"dtask-async/{__version__}"
        assert "workerid" not in call.headers  # clients are not workers


async def test_token_is_refreshed_before_it_expires(tls_server: TlsServer, clock: Clock) -> None:
    async with client_for(tls_server) as client:
        await client.get_orchestration_state("a")
        clock.advance(3000)  # 600 s left: more than the 300 s refresh margin
        await client.get_orchestration_state("b")
        assert tls_server.credential.calls == 1
        clock.advance(301)  # 299 s left: renew now, before the server would refuse it
        await client.get_orchestration_state("c")
        assert tls_server.credential.calls == 2
        clock.advance(3600 - 301)  # tok-1 has expired by now; tok-2 is still good
        await client.get_orchestration_state("d")
    tokens = [call.token for call in tls_server.recorder.of("GetInstance")]
    assert tokens == ["tok-1", "tok-1", "tok-2", "tok-2"]
    assert all(call.refused is None for call in tls_server.recorder.calls)


async def test_a_call_without_a_token_is_refused_clearly(tls_server: TlsServer) -> None:
    text = f"Endpoint={tls_server.address};Authentication=None;TaskHub=orders"
    async with DurableTaskSchedulerClient(
        text, root_certificates=tls_server.certificate.cert_pem
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_orchestration_state("a")
    error = info.value
    assert error.code == "UNAUTHENTICATED"
    assert str(error) == (
        f"the server at {tls_server.address} refused the credentials "
        "(UNAUTHENTICATED: the call has no authorization header)"
    )
    [call] = tls_server.recorder.calls
    assert "authorization" not in call.headers
    assert call.headers["taskhub"] == "orders"


async def test_an_expired_token_is_refused(tls_server: TlsServer, clock: Clock) -> None:
    stale = FakeCredential(clock, lifetime=-1)  # a credential handing out expired tokens
    tls_server.credential.issued = stale.issued  # the server knows its tokens
    async with client_for(tls_server, token_credential=stale) as client:
        with pytest.raises(AuthenticationError, match=r"token tok-1 has expired"):
            await client.get_orchestration_state("a")


async def test_a_refused_token_is_replaced_on_the_next_call(tls_server: TlsServer) -> None:
    async with client_for(tls_server) as client:
        await client.get_orchestration_state("a")
        tls_server.credential.revoked.add("tok-1")  # e.g. the role assignment changed
        with pytest.raises(AuthenticationError, match="token tok-1 was revoked"):
            await client.get_orchestration_state("b")
        assert await client.get_orchestration_state("c") is not None
    assert [call.token for call in tls_server.recorder.calls] == ["tok-1", "tok-1", "tok-2"]


class BrokenCredential:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("ManagedIdentityCredential: no managed identity endpoint found")


async def test_a_failing_credential_is_an_authentication_error(tls_server: TlsServer) -> None:
    broken = BrokenCredential()
    async with client_for(tls_server, token_credential=broken) as client:
        results = await asyncio.gather(
            *(client.get_orchestration_state(f"i-{n}") for n in range(20)),
            return_exceptions=True,
        )
    assert broken.calls == 1  # the waiting calls shared the one failure
    assert all(isinstance(result, AuthenticationError) for result in results)
    assert str(results[0]) == (
        f"GetInstance: no call was made to {tls_server.address}: could not get an access "
        f"token for {SCOPE} from BrokenCredential: RuntimeError: ManagedIdentityCredential: "
        "no managed identity endpoint found"
    )
    assert tls_server.recorder.calls == []


async def test_connection_string_credential_is_used_and_closed(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def create(self: DurableTaskSchedulerConnectionString) -> FakeCredential:
        return tls_server.credential  # instead of a real ManagedIdentityCredential

    monkeypatch.setattr(DurableTaskSchedulerConnectionString, "create_credential", create)
    text = f"Endpoint={tls_server.address};Authentication=ManagedIdentity;ClientID=abc"
    client = DurableTaskSchedulerClient(
        text, task_hub_name="orders", root_certificates=tls_server.certificate.cert_pem
    )
    async with client:
        state = await client.get_orchestration_state("a")
    assert state is not None
    assert tls_server.credential.closed == 1
    [call] = tls_server.recorder.calls
    assert (call.token, call.headers["taskhub"]) == ("tok-1", "orders")


async def test_tls_is_verified_against_the_given_roots(tls_server: TlsServer) -> None:
    # Without root_certificates the system roots are used, which do not trust
    # the self-signed certificate: the handshake fails and nothing arrives.
    client = DurableTaskSchedulerClient(
        host_address=tls_server.address,
        taskhub="orders",
        token_credential=tls_server.credential,
        channel_options=ChannelOptions(retry_unavailable_attempts=1),
    )
    async with client:
        with pytest.raises(ServerUnavailableError):
            await client.get_orchestration_state("a")
    assert tls_server.recorder.calls == []


def work_item_streams(calls: list[Call]) -> list[Call]:
    return [call for call in calls if call.method == "GetWorkItems"]


async def test_worker_stream_carries_headers_on_every_reconnect(
    tls_server: TlsServer, clock: Clock
) -> None:
    worker = DurableTaskSchedulerWorker(
        host_address=tls_server.address,
        taskhub="orders",
        token_credential=tls_server.credential,
        root_certificates=tls_server.certificate.cert_pem,
        reconnect=FAST_RECONNECT,
        worker_id="worker-7",
    )
    recorder = tls_server.recorder
    async with worker:
        await worker.start()
        await recorder.wait_for(lambda calls: len(work_item_streams(calls)) >= 2)
        clock.advance(3600 - 299)  # inside the refresh margin: reconnects get a new token
        await recorder.wait_for(
            lambda calls: any(call.token == "tok-2" for call in work_item_streams(calls))
        )
    streams = work_item_streams(recorder.calls)
    assert len(streams) >= 3
    for call in streams:
        assert call.refused is None
        assert call.headers["workerid"] == "worker-7"
        assert call.headers["taskhub"] == "orders"
        assert call.headers["x-user-agent"] == f"dtask-async/{__version__}"
    tokens = [call.token for call in streams]
    assert tokens[:2] == ["tok-1", "tok-1"]
    assert tokens[-1] == "tok-2"
    assert tls_server.credential.calls == 2


async def test_worker_replaces_a_token_the_server_refuses(tls_server: TlsServer) -> None:
    worker = DurableTaskSchedulerWorker(
        host_address=tls_server.address,
        taskhub="orders",
        token_credential=tls_server.credential,
        root_certificates=tls_server.certificate.cert_pem,
        reconnect=FAST_RECONNECT,
    )
    recorder = tls_server.recorder
    async with worker:
        await worker.start()
        await recorder.wait_for(lambda calls: len(work_item_streams(calls)) >= 1)
        tls_server.credential.revoked.add("tok-1")
        await recorder.wait_for(
            lambda calls: any(
                call.token == "tok-2" and call.refused is None for call in work_item_streams(calls)
            )
        )
    streams = work_item_streams(recorder.calls)
    refused = [call for call in streams if call.refused]
    assert refused
    assert {call.token for call in refused} == {"tok-1"}
    # one refusal is enough for the worker to ask for a new token
    first_refusal = streams.index(refused[0])
    assert streams[first_refusal + 1].token == "tok-2"


class RecoveringCredential:
    """Fails its first ``failures`` requests, then hands out the server's tokens."""

    def __init__(self, inner: FakeCredential, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("the token endpoint is not reachable yet")
        return await self.inner.get_token(*scopes)


async def test_worker_survives_a_failing_credential(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    credential = RecoveringCredential(tls_server.credential, failures=2)
    worker = DurableTaskSchedulerWorker(
        host_address=tls_server.address,
        taskhub="orders",
        token_credential=credential,
        root_certificates=tls_server.certificate.cert_pem,
        reconnect=FAST_RECONNECT,
    )
    async with worker:
        await worker.start()
        await tls_server.recorder.wait_for(lambda calls: len(work_item_streams(calls)) >= 1)
        assert worker.is_running
    assert credential.calls == 3
    [first, *_] = work_item_streams(tls_server.recorder.calls)
    assert (first.token, first.refused) == ("tok-1", None)
    assert "could not get an access token for https://durabletask.io/.default" in caplog.text
