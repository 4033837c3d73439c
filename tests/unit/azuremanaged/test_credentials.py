"""Which azure-identity credential each ``Authentication`` value selects (no network)."""

from __future__ import annotations

from typing import Any

import azure.identity
import azure.identity.aio
import pytest

from dtask_async import ConnectionStringError
from dtask_async.azuremanaged import DurableTaskSchedulerConnectionString
from dtask_async.azuremanaged._credentials import _http_options, close_credential

parse = DurableTaskSchedulerConnectionString.parse

WORKLOAD_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*WORKLOAD_VARIABLES, "REGION_NAME"):
        monkeypatch.delenv(name, raising=False)


def cs(authentication: str, extra: str = "") -> DurableTaskSchedulerConnectionString:
    return parse(
        f"Endpoint=https://s.durabletask.io;TaskHub=h;Authentication={authentication}{extra}"
    )


WORKLOAD = ";ClientID=client;TenantId=tenant;TokenFilePath=/var/run/token"


@pytest.mark.parametrize(
    ("authentication", "extra", "expected"),
    [
        ("DefaultAzure", "", azure.identity.aio.DefaultAzureCredential),
        ("ManagedIdentity", "", azure.identity.aio.ManagedIdentityCredential),
        ("ManagedIdentity", ";ClientID=client", azure.identity.aio.ManagedIdentityCredential),
        ("WorkloadIdentity", WORKLOAD, azure.identity.aio.WorkloadIdentityCredential),
        ("Environment", "", azure.identity.aio.EnvironmentCredential),
        ("AzureCli", "", azure.identity.aio.AzureCliCredential),
        ("AzurePowerShell", "", azure.identity.aio.AzurePowerShellCredential),
        ("VisualStudioCode", "", azure.identity.aio.VisualStudioCodeCredential),
        # azure-identity has no asynchronous InteractiveBrowserCredential
        ("InteractiveBrowser", "", azure.identity.InteractiveBrowserCredential),
    ],
)
async def test_each_authentication_builds_its_credential(
    authentication: str, extra: str, expected: type
) -> None:
    credential = cs(authentication, extra).create_credential()
    try:
        assert type(credential) is expected
    finally:
        await close_credential(credential)


def test_none_means_no_credential() -> None:
    assert cs("None").create_credential() is None


class Recorder:
    """Stands in for a credential class and remembers how it was built."""

    def __init__(self, name: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.name = name
        self.calls = calls

    def __call__(self, **kwargs: Any) -> Recorder:
        self.calls.append((self.name, kwargs))
        return self


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in (
        "DefaultAzureCredential",
        "ManagedIdentityCredential",
        "WorkloadIdentityCredential",
        "EnvironmentCredential",
        "AzureCliCredential",
        "AzurePowerShellCredential",
        "VisualStudioCodeCredential",
    ):
        monkeypatch.setattr(azure.identity.aio, name, Recorder(name, calls))
    monkeypatch.setattr(
        azure.identity, "InteractiveBrowserCredential", Recorder("InteractiveBrowser", calls)
    )
    # a fixed HTTP set-up, whether or not aiohttp is installed
    monkeypatch.setattr("dtask_async.azuremanaged._credentials._http_options", dict)
    return calls


AUTHORITY = ";AuthorityHost=https://login.microsoftonline.us/"


@pytest.mark.parametrize(
    ("authentication", "extra", "expected"),
    [
        ("DefaultAzure", "", ("DefaultAzureCredential", {})),
        (
            "DefaultAzure",
            AUTHORITY,
            ("DefaultAzureCredential", {"authority": "https://login.microsoftonline.us/"}),
        ),
        ("ManagedIdentity", "", ("ManagedIdentityCredential", {"client_id": None})),
        # an authority does not apply to managed identity
        (
            "ManagedIdentity",
            f";ClientID=abc{AUTHORITY}",
            ("ManagedIdentityCredential", {"client_id": "abc"}),
        ),
        (
            "WorkloadIdentity",
            f"{WORKLOAD};AdditionallyAllowedTenants=t2,t3{AUTHORITY}",
            (
                "WorkloadIdentityCredential",
                {
                    "tenant_id": "tenant",
                    "client_id": "client",
                    "token_file_path": "/var/run/token",
                    "additionally_allowed_tenants": ["t2", "t3"],
                    "authority": "https://login.microsoftonline.us/",
                },
            ),
        ),
        (
            "Environment",
            AUTHORITY,
            ("EnvironmentCredential", {"authority": "https://login.microsoftonline.us/"}),
        ),
        ("AzureCli", AUTHORITY, ("AzureCliCredential", {})),
        ("AzurePowerShell", "", ("AzurePowerShellCredential", {})),
        ("VisualStudioCode", "", ("VisualStudioCodeCredential", {})),
        (
            "InteractiveBrowser",
            AUTHORITY,
            ("InteractiveBrowser", {"authority": "https://login.microsoftonline.us/"}),
        ),
    ],
)
def test_credential_arguments(
    recorded: list[tuple[str, dict[str, Any]]],
    authentication: str,
    extra: str,
    expected: tuple[str, dict[str, Any]],
) -> None:
    cs(authentication, extra).create_credential()
    assert recorded == [expected]


def test_workload_identity_takes_missing_settings_from_the_environment(
    recorded: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in WORKLOAD_VARIABLES:
        monkeypatch.setenv(name, "from-environment")
    cs("WorkloadIdentity", ";ClientID=client").create_credential()
    # azure-identity reads the environment itself for what is not passed
    assert recorded == [("WorkloadIdentityCredential", {"client_id": "client"})]


def test_workload_identity_names_what_is_missing() -> None:
    with pytest.raises(ConnectionStringError) as info:
        cs("WorkloadIdentity", ";ClientID=client").create_credential()
    assert str(info.value) == (
        "Authentication=WorkloadIdentity needs a tenant, a client id and a token file, from the "
        "connection string or the environment; missing: TenantId (or AZURE_TENANT_ID), "
        "TokenFilePath (or AZURE_FEDERATED_TOKEN_FILE)"
    )


def test_http_transport_without_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.pipeline.transport import AsyncioRequestsTransport

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    options = _http_options()
    assert isinstance(options["transport"], AsyncioRequestsTransport)


class Closable:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


class SyncClosable:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class BrokenClose:
    async def close(self) -> None:
        raise RuntimeError("the session is gone")


async def test_close_credential_handles_sync_async_and_failing_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async_one, sync_one = Closable(), SyncClosable()
    await close_credential(async_one)
    await close_credential(sync_one)
    await close_credential(object())  # nothing to close
    await close_credential(BrokenClose())
    assert (async_one.closed, sync_one.closed) == (1, 1)
    assert "closing BrokenClose failed" in caplog.text
