"""Parsing Durable Task Scheduler connection strings: a table of valid and invalid ones."""

from __future__ import annotations

from typing import Any

import pytest

from dtask_async import ConnectionStringError
from dtask_async.azuremanaged import (
    DEFAULT_RESOURCE_ID,
    AuthenticationType,
    DurableTaskSchedulerConnectionString,
)

parse = DurableTaskSchedulerConnectionString.parse

EXAMPLE = "Endpoint=https://NAME.REGION.durabletask.io;Authentication=DefaultAzure;TaskHub=HUB"
VALID_AUTH = (
    "DefaultAzure, ManagedIdentity, WorkloadIdentity, Environment, AzureCli, "
    "AzurePowerShell, VisualStudioCode, InteractiveBrowser, None"
)
VALID_KEYS = (
    "Endpoint, TaskHub, Authentication, ClientID, TenantId, TokenFilePath, "
    "AdditionallyAllowedTenants, ResourceId, AuthorityHost"
)


@pytest.fixture(autouse=True)
def _public_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGION_NAME", raising=False)


VALID: list[tuple[str, dict[str, Any]]] = [
    (
        "Endpoint=https://myscheduler.westus2.durabletask.io;Authentication=DefaultAzure;"
        "TaskHub=orders",
        {
            "endpoint": "https://myscheduler.westus2.durabletask.io",
            "authentication": AuthenticationType.DEFAULT_AZURE,
            "task_hub": "orders",
            "resource_id": DEFAULT_RESOURCE_ID,
            "secure": True,
            "token_scope": "https://durabletask.io/.default",
        },
    ),
    # the emulator: plaintext, no token, no hub in the string
    (
        "Endpoint=http://localhost:8080;Authentication=None",
        {
            "endpoint": "http://localhost:8080",
            "authentication": AuthenticationType.NONE,
            "task_hub": None,
            "secure": False,
        },
    ),
    # keys and values are case-insensitive; whitespace and empty segments are ignored
    (
        " endpoint = myscheduler.westus2.durabletask.io ; AUTHENTICATION = managedidentity ;"
        " clientid = 00000000-0000-0000-0000-000000000001 ; taskhub = hub ;;",
        {
            "endpoint": "https://myscheduler.westus2.durabletask.io",
            "authentication": AuthenticationType.MANAGED_IDENTITY,
            "client_id": "00000000-0000-0000-0000-000000000001",
            "task_hub": "hub",
            "secure": True,
        },
    ),
    (
        "Endpoint=https://s.durabletask.io/;Authentication=WorkloadIdentity;TaskHub=h;"
        "ClientID=c;TenantId=t;TokenFilePath=/var/run/secrets/token;"
        "AdditionallyAllowedTenants= t2 , ,t3,",
        {
            "endpoint": "https://s.durabletask.io",
            "authentication": AuthenticationType.WORKLOAD_IDENTITY,
            "client_id": "c",
            "tenant_id": "t",
            "token_file_path": "/var/run/secrets/token",
            "additionally_allowed_tenants": ("t2", "t3"),
        },
    ),
    (
        "Endpoint=https://s.usgovvirginia.durabletask.azure.us;Authentication=Environment;"
        "TaskHub=h;ResourceId= https://durabletask.azure.us/.DEFAULT/ ;"
        "AuthorityHost=https://login.microsoftonline.us/",
        {
            "authentication": AuthenticationType.ENVIRONMENT,
            "resource_id": "https://durabletask.azure.us",
            "token_scope": "https://durabletask.azure.us/.default",
            "authority_host": "https://login.microsoftonline.us/",
        },
    ),
    # only one "/.default" is removed
    (
        "Endpoint=https://s;Authentication=None;ResourceId=api://Custom/.default/.default/",
        {"resource_id": "api://Custom/.default", "token_scope": "api://Custom/.default/.default"},
    ),
    # an empty ResourceId is the default; an empty optional key is as good as absent
    (
        "Endpoint=https://s;Authentication=AzureCli;ResourceId=;ClientID=;TaskHub=",
        {"resource_id": DEFAULT_RESOURCE_ID, "client_id": None, "task_hub": None},
    ),
    ("Endpoint=http://127.0.0.1:9999;Authentication=azure cli", {"secure": False}),
    ("Endpoint=HTTPS://S.example:8443;Authentication=None", {"endpoint": "https://S.example:8443"}),
    ("Endpoint=http://[::1]:8080;Authentication=None", {"endpoint": "http://[::1]:8080"}),
    ("Endpoint=https://s;Authentication=AzurePowerShell", {}),
    ("Endpoint=https://s;Authentication=VisualStudioCode", {}),
    ("Endpoint=https://s;Authentication=InteractiveBrowser", {}),
    # a value may contain "="
    ("Endpoint=https://s;Authentication=None;TaskHub=a=b", {"task_hub": "a=b"}),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_connection_strings(text: str, expected: dict[str, Any]) -> None:
    parsed = parse(text)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


INVALID: list[tuple[Any, str]] = [
    ("", f"the connection string is empty; expected e.g. {EXAMPLE!r}"),
    ("  ; ", f"the connection string is empty; expected e.g. {EXAMPLE!r}"),
    (
        "localhost:8080",
        "this is not a connection string (it has no Key=Value pairs); expected e.g. "
        f"{EXAMPLE!r}, or pass a server address as host_address=",
    ),
    (
        "Endpoint=https://s;Authentication",
        "segment 2 of the connection string has no '='; expected Key=Value pairs separated by ';'",
    ),
    (
        "Endpoint=https://s;=None",
        "segment 2 of the connection string has an empty key (it starts with '=')",
    ),
    (
        "Endpoint=https://s;Authentication=None;endpoint=https://t",
        "the connection string sets Endpoint more than once",
    ),
    (
        "Endpoint=https://s;Authentication=None;Region=westus",
        f"unknown connection string key 'Region'; valid keys: {VALID_KEYS}",
    ),
    (
        "Authentication=None;TaskHub=h",
        f"the connection string has no Endpoint; expected e.g. {EXAMPLE!r}",
    ),
    (
        "Endpoint= ;Authentication=None",
        f"the connection string has no Endpoint; expected e.g. {EXAMPLE!r}",
    ),
    (
        "Endpoint=https://s;TaskHub=h",
        f"the connection string has no Authentication; valid values: {VALID_AUTH} "
        "(None sends no token, for a local emulator)",
    ),
    (
        "Endpoint=https://s;Authentication=Certificate",
        f"unsupported Authentication 'Certificate' in the connection string; valid values: "
        f"{VALID_AUTH}",
    ),
    (
        "Endpoint=ftp://s;Authentication=None",
        "Endpoint has the scheme 'ftp'; use https:// for the scheduler or http:// for a local "
        "emulator",
    ),
    (
        "Endpoint=https://s/api/v1;Authentication=None",
        "Endpoint must be only a scheme, a host and an optional port, such as "
        "'https://NAME.REGION.durabletask.io' (no user info, path or query)",
    ),
    (
        "Endpoint=https://s:70000;Authentication=None",
        "invalid Endpoint: server address 'https://s:70000' has an invalid port '70000'",
    ),
    (
        "Endpoint=https://s;Authentication=None;ResourceId=  ",
        "ResourceId '  ' is empty once whitespace, trailing '/' and '/.default' are removed; "
        "give the scheduler's audience, such as 'https://durabletask.io'",
    ),
    (
        "Endpoint=https://s;Authentication=None;ResourceId=/.default",
        "ResourceId '/.default' is empty once whitespace, trailing '/' and '/.default' are "
        "removed; give the scheduler's audience, such as 'https://durabletask.io'",
    ),
    (
        "Endpoint=https://s;Authentication=DefaultAzure;AuthorityHost=login.microsoftonline.us",
        "AuthorityHost must be an absolute https:// URL, such as "
        "'https://login.microsoftonline.us/'; got 'login.microsoftonline.us'",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_connection_strings(text: str, message: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_a_connection_string_must_be_text() -> None:
    with pytest.raises(TypeError, match="must be a str, got bytes"):
        parse(b"Endpoint=https://s;Authentication=None")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("usgovvirginia", "https://durabletask.azure.us"),
        ("USDoDEast", "https://durabletask.azure.us"),
        ("westus2", DEFAULT_RESOURCE_ID),
        ("", DEFAULT_RESOURCE_ID),
    ],
)
def test_default_audience_follows_region_name(
    monkeypatch: pytest.MonkeyPatch, region: str, expected: str
) -> None:
    monkeypatch.setenv("REGION_NAME", region)
    assert parse("Endpoint=https://s;Authentication=None").resource_id == expected
    explicit = parse("Endpoint=https://s;Authentication=None;ResourceId=https://other.example")
    assert explicit.resource_id == "https://other.example"


def test_direct_construction_validates_like_parse() -> None:
    built = DurableTaskSchedulerConnectionString(
        endpoint="s.durabletask.io",
        authentication="managed identity",  # type: ignore[arg-type]
        task_hub=" hub ",
    )
    assert built == parse(
        "Endpoint=https://s.durabletask.io;Authentication=ManagedIdentity;TaskHub=hub"
    )
    with pytest.raises(ConnectionStringError, match="unsupported Authentication 'Token'"):
        DurableTaskSchedulerConnectionString(
            endpoint="https://s",
            authentication="Token",  # type: ignore[arg-type]
        )


SECRET = "hunter2-do-not-print"


def test_repr_masks_identity_details() -> None:
    parsed = parse(
        "Endpoint=https://s.durabletask.io;Authentication=WorkloadIdentity;TaskHub=hub;"
        f"ClientID={SECRET}-client;TenantId={SECRET}-tenant;TokenFilePath=/run/{SECRET};"
        f"AdditionallyAllowedTenants={SECRET}-other"
    )
    text = repr(parsed)
    assert SECRET not in text
    assert SECRET not in str(parsed)
    assert text == (
        "DurableTaskSchedulerConnectionString(endpoint='https://s.durabletask.io', "
        "authentication='WorkloadIdentity', task_hub='hub', "
        "resource_id='https://durabletask.io', client_id=<set>, tenant_id=<set>, "
        "token_file_path=<set>, additionally_allowed_tenants=<set>)"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"Endpoint=https://s;Authentication=None;ClientSecret={SECRET}",
        f"Endpoint=https://s;Authentication=None;{SECRET}",
        f"Endpoint=https://user:{SECRET}@s;Authentication=None",
        f"Endpoint=ftp://user:{SECRET}@s;Authentication=None",
        f"Endpoint=https://s/?sig={SECRET};Authentication=None",
        f"Endpoint=https://s;Authentication=None;ClientSecret={SECRET};ClientSecret={SECRET}",
    ],
)
def test_errors_do_not_echo_values_that_may_be_secrets(text: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse(text)
    assert SECRET not in str(info.value)


def test_authentication_values_are_named_like_the_other_sdks() -> None:
    assert [member.value for member in AuthenticationType] == VALID_AUTH.split(", ")
    assert AuthenticationType.from_text("  default AZURE ") is AuthenticationType.DEFAULT_AZURE
    assert str(AuthenticationType.NONE) == "None"
