"""How the scheduler client and worker resolve their arguments (no network)."""

from __future__ import annotations

from typing import Any

import pytest

import dtask_async.azuremanaged as azuremanaged
from dtask_async import ConnectionStringError
from dtask_async.azuremanaged import (
    DurableTaskSchedulerClient,
    DurableTaskSchedulerConnectionString,
    DurableTaskSchedulerWorker,
)
from dtask_async.client import AsyncDurableTaskClient
from dtask_async.worker import AsyncDurableTaskWorker

Scheduler = type[DurableTaskSchedulerClient] | type[DurableTaskSchedulerWorker]
BOTH = pytest.mark.parametrize(
    "cls", [DurableTaskSchedulerClient, DurableTaskSchedulerWorker], ids=["client", "worker"]
)

REMOTE = "https://myscheduler.westus2.durabletask.io"


@pytest.fixture(autouse=True)
def _public_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGION_NAME", raising=False)


async def close(obj: Any) -> None:
    if isinstance(obj, DurableTaskSchedulerWorker):
        await obj.stop()
    else:
        await obj.aclose()


class FakeCredential:
    def __init__(self) -> None:
        self.closed = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("no token is needed in these tests")

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[FakeCredential]:
    """Credentials that connection strings create, replaced by fakes."""
    made: list[FakeCredential] = []

    def create(self: DurableTaskSchedulerConnectionString) -> FakeCredential | None:
        if self.authentication.value == "None":
            return None
        made.append(FakeCredential())
        return made[-1]

    monkeypatch.setattr(DurableTaskSchedulerConnectionString, "create_credential", create)
    return made


def test_public_names_and_import_paths() -> None:
    from dtask_async.azuremanaged.client import DurableTaskSchedulerClient as ClientByPath
    from dtask_async.azuremanaged.worker import DurableTaskSchedulerWorker as WorkerByPath

    assert ClientByPath is DurableTaskSchedulerClient
    assert WorkerByPath is DurableTaskSchedulerWorker
    assert issubclass(DurableTaskSchedulerClient, AsyncDurableTaskClient)
    assert issubclass(DurableTaskSchedulerWorker, AsyncDurableTaskWorker)
    assert isinstance(azuremanaged.__all__, tuple)
    for name in azuremanaged.__all__:
        assert hasattr(azuremanaged, name), name


@BOTH
async def test_no_arguments_mean_the_local_emulator(cls: Scheduler) -> None:
    for scheduler in (cls(), cls(None), cls(connection_string=None)):
        target = scheduler._connection.target
        assert (str(target), target.secure) == ("http://localhost:8080", False)
        assert target.original == "http://localhost:8080"
        assert scheduler.taskhub == "default"
        assert scheduler._connection.tokens is None
        assert scheduler.connection_string is None
        await close(scheduler)


@BOTH
async def test_connection_string_positional_and_keyword(
    cls: Scheduler, created: list[FakeCredential]
) -> None:
    text = f"Endpoint={REMOTE};Authentication=DefaultAzure;TaskHub=orders"
    for scheduler in (cls(text), cls(connection_string=text)):
        assert str(scheduler._connection.target) == f"{REMOTE}:443"
        assert scheduler._connection.target.secure
        assert scheduler.taskhub == "orders"
        assert scheduler._connection.taskhub == "orders"
        tokens = scheduler._connection.tokens
        assert tokens is not None
        assert tokens.scope == "https://durabletask.io/.default"
        assert tokens.credential is scheduler.token_credential
        assert scheduler.token_credential in created
        assert scheduler.connection_string == DurableTaskSchedulerConnectionString.parse(text)
        await close(scheduler)


@BOTH
async def test_task_hub_name_supplies_or_overrides_the_hub(
    cls: Scheduler, created: list[FakeCredential]
) -> None:
    base = f"Endpoint={REMOTE};Authentication=ManagedIdentity"
    assert cls(base, task_hub_name="hub1").taskhub == "hub1"
    assert cls(base, "hub2").taskhub == "hub2"
    assert cls(f"{base};TaskHub=inner", task_hub_name="outer").taskhub == "outer"
    assert cls(f"{base};TaskHub=inner", taskhub="outer").taskhub == "outer"
    parsed = DurableTaskSchedulerConnectionString.parse(f"{base};TaskHub=inner")
    assert cls(parsed).taskhub == "inner"


@BOTH
def test_a_remote_scheduler_needs_a_task_hub(cls: Scheduler) -> None:
    with pytest.raises(ConnectionStringError) as info:
        cls(f"Endpoint={REMOTE};Authentication=None")
    assert str(info.value) == (
        "the connection string has no TaskHub and no task_hub_name= was given; the Durable "
        f"Task Scheduler at {REMOTE} needs a task hub"
    )
    with pytest.raises(ValueError) as keyword_info:
        cls(host_address=REMOTE)
    assert str(keyword_info.value) == (
        f"{cls.__name__}(): the Durable Task Scheduler at {REMOTE} needs a task hub; "
        "pass taskhub= (or task_hub_name=)"
    )


@BOTH
@pytest.mark.parametrize(
    "local",
    [
        "Endpoint=http://localhost:8080;Authentication=None",
        "Endpoint=http://dts-emulator:8080;Authentication=None",
        "Endpoint=https://localhost:8443;Authentication=None",
    ],
)
async def test_a_local_endpoint_defaults_to_the_default_hub(cls: Scheduler, local: str) -> None:
    scheduler = cls(local)
    assert scheduler.taskhub == "default"
    await close(scheduler)


@BOTH
async def test_seed_keyword_forms(cls: Scheduler) -> None:
    credential = FakeCredential()
    # seed 000, remote
    remote = cls(
        host_address=REMOTE, secure_channel=True, taskhub="my-taskhub", token_credential=credential
    )
    assert remote._connection.target.secure
    assert remote.taskhub == "my-taskhub"
    tokens = remote._connection.tokens
    assert tokens is not None
    assert tokens.credential is credential
    assert tokens.scope == "https://durabletask.io/.default"
    # seed 000 and 004, local
    local = cls(
        host_address="http://localhost:8080",
        secure_channel=False,
        taskhub="default",
        token_credential=None,
    )
    assert not local._connection.target.secure
    assert local._connection.tokens is None
    # seed 003, "or explicitly"
    explicit = cls(endpoint="http://localhost:8080", task_hub_name="default")
    assert (str(explicit._connection.target), explicit.taskhub) == (
        "http://localhost:8080",
        "default",
    )
    for scheduler in (remote, local, explicit):
        await close(scheduler)
    assert credential.closed == 0  # the caller's credential stays open


@BOTH
@pytest.mark.parametrize(
    ("address", "secure_channel", "expected"),
    [
        (
            "myscheduler.westus2.durabletask.io",
            None,
            "https://myscheduler.westus2.durabletask.io:443",
        ),
        (
            "myscheduler.westus2.durabletask.io:443",
            False,
            "http://myscheduler.westus2.durabletask.io:443",
        ),
        ("localhost:8080", None, "http://localhost:8080"),
        ("127.0.0.1:8080", True, "https://127.0.0.1:8080"),
        # the scheme decides, as in the official SDK
        ("http://localhost:8080", True, "http://localhost:8080"),
        ("https://localhost:8443", False, "https://localhost:8443"),
    ],
)
async def test_tls_selection(
    cls: Scheduler, address: str, secure_channel: bool | None, expected: str
) -> None:
    scheduler = cls(host_address=address, secure_channel=secure_channel, taskhub="h")
    assert str(scheduler._connection.target) == expected
    await close(scheduler)


@BOTH
@pytest.mark.parametrize(
    ("resource_id", "region", "scope"),
    [
        (None, None, "https://durabletask.io/.default"),
        (None, "usgovarizona", "https://durabletask.azure.us/.default"),
        ("https://durabletask.azure.us/", None, "https://durabletask.azure.us/.default"),
        ("https://custom.example/.default", "usgovtexas", "https://custom.example/.default"),
    ],
)
async def test_resource_id_sets_the_token_scope(
    monkeypatch: pytest.MonkeyPatch,
    cls: Scheduler,
    resource_id: str | None,
    region: str | None,
    scope: str,
) -> None:
    if region is not None:
        monkeypatch.setenv("REGION_NAME", region)
    scheduler = cls(
        host_address=REMOTE, taskhub="h", token_credential=FakeCredential(), resource_id=resource_id
    )
    tokens = scheduler._connection.tokens
    assert tokens is not None
    assert tokens.scope == scope
    await close(scheduler)


@BOTH
def test_conflicting_arguments(cls: Scheduler) -> None:
    text = f"Endpoint={REMOTE};Authentication=None;TaskHub=h"
    with pytest.raises(TypeError) as info:
        cls(text, host_address=REMOTE, token_credential=FakeCredential())
    assert str(info.value) == (
        f"{cls.__name__}() got a connection string and host_address, token_credential=; the "
        "connection string already sets the endpoint, TLS and credential"
    )
    with pytest.raises(TypeError, match=r"got task_hub_name='a' and taskhub='b'; give one"):
        cls(text, task_hub_name="a", taskhub="b")
    with pytest.raises(TypeError, match=r"got host_address='x:1' and endpoint='y:1'"):
        cls(host_address="x:1", endpoint="y:1", taskhub="h")
    with pytest.raises(TypeError, match=r"takes a connection string \(str\), got int"):
        cls(42)  # type: ignore[arg-type]
    with pytest.raises(ConnectionStringError, match="not a connection string"):
        cls("myscheduler.westus2.durabletask.io")


async def test_client_closes_the_credential_it_created(created: list[FakeCredential]) -> None:
    client = DurableTaskSchedulerClient(f"Endpoint={REMOTE};Authentication=DefaultAzure;TaskHub=h")
    async with client as entered:
        assert entered is client
    assert created[0].closed == 1
    await client.close()  # twice is fine, and closes nothing again
    assert created[0].closed == 1


async def test_worker_closes_the_credential_it_created(created: list[FakeCredential]) -> None:
    worker = DurableTaskSchedulerWorker(f"Endpoint={REMOTE};Authentication=DefaultAzure;TaskHub=h")
    async with worker as entered:
        assert entered is worker
    assert created[0].closed == 1
    await worker.stop()
    assert created[0].closed == 1


async def test_worker_options_pass_through() -> None:
    worker = DurableTaskSchedulerWorker(worker_id="w-1", shutdown_timeout=1.5)
    assert (worker.worker_id, worker.shutdown_timeout) == ("w-1", 1.5)
    await worker.stop()


async def test_client_options_pass_through() -> None:
    client = DurableTaskSchedulerClient(default_version="2.0")
    assert client.default_version == "2.0"
    await client.aclose()


async def test_tokens_over_plaintext_are_warned_about(
    created: list[FakeCredential], caplog: pytest.LogCaptureFixture
) -> None:
    client = DurableTaskSchedulerClient(
        "Endpoint=http://scheduler.internal:8080;Authentication=DefaultAzure;TaskHub=h"
    )
    await client.aclose()
    assert (
        "DurableTaskSchedulerClient: sending DefaultAzure tokens to "
        "http://scheduler.internal:8080 over a plaintext channel"
    ) in caplog.text
