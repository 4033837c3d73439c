"""A credential that fails: one shared failure, a clear error, and a later retry."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from dtask_async.transport import AccessTokenProvider
from dtask_async.transport._auth import TokenUnavailableError


@dataclass
class AccessToken:
    token: str
    expires_on: int


class FlakyCredential:
    """Fails the first ``failures`` requests, slowly, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        await asyncio.sleep(0.01)  # a slow token endpoint, so callers overlap
        if self.calls <= self.failures:
            raise RuntimeError("IMDS is not reachable")
        return AccessToken(f"token-{self.calls}", int(time.time() + 3600))


async def test_callers_waiting_on_a_failed_request_share_its_failure() -> None:
    credential = FlakyCredential(failures=1)
    provider = AccessTokenProvider(credential)
    results = await asyncio.gather(*(provider.get() for _ in range(50)), return_exceptions=True)
    assert credential.calls == 1
    assert all(isinstance(result, TokenUnavailableError) for result in results)
    error = results[0]
    assert isinstance(error, TokenUnavailableError)
    assert str(error) == (
        "could not get an access token for https://durabletask.io/.default from "
        "FlakyCredential: RuntimeError: IMDS is not reachable"
    )
    assert isinstance(error, grpc.RpcError)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(error.__cause__, RuntimeError)
    # a later call asks again, and succeeds
    assert await provider.get() == "token-2"
    assert provider.fetch_count == 1


async def test_a_failure_is_not_cached_for_later_callers() -> None:
    credential = FlakyCredential(failures=2)
    provider = AccessTokenProvider(credential)
    for _ in range(2):
        with pytest.raises(TokenUnavailableError):
            await provider.get()
    assert await provider.get() == "token-3"
    assert credential.calls == 3
