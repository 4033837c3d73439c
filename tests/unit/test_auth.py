from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from dtask_async.transport import DEFAULT_SCOPE, AccessTokenProvider


@dataclass
class AccessToken:
    token: str
    expires_on: int


class CountingAsyncCredential:
    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.lifetime = lifetime

    async def get_token(self, *scopes: str) -> AccessToken:
        self.calls.append(scopes)
        await asyncio.sleep(0.01)  # a slow token endpoint, so callers overlap
        return AccessToken(f"token-{len(self.calls)}", int(time.time() + self.lifetime))


class CountingSyncCredential(CountingAsyncCredential):
    def get_token(self, *scopes: str) -> AccessToken:  # type: ignore[override]
        self.calls.append(scopes)
        return AccessToken(f"sync-{len(self.calls)}", int(time.time() + self.lifetime))


async def test_concurrent_callers_share_one_token_request() -> None:
    credential = CountingAsyncCredential()
    provider = AccessTokenProvider(credential)
    tokens = await asyncio.gather(*(provider.get() for _ in range(100)))
    assert set(tokens) == {"token-1"}
    assert credential.calls == [(DEFAULT_SCOPE,)]


async def test_token_is_refreshed_before_expiry() -> None:
    credential = CountingAsyncCredential(lifetime=10)  # inside the 300 s margin
    provider = AccessTokenProvider(credential)
    assert await provider.get() == "token-1"
    assert await provider.get() == "token-2"
    long_lived = AccessTokenProvider(CountingAsyncCredential(lifetime=3600))
    assert await long_lived.get() == await long_lived.get()


async def test_sync_credentials_and_custom_scope() -> None:
    credential = CountingSyncCredential()
    provider = AccessTokenProvider(credential, scope="https://example/.default")
    assert await provider.get() == "sync-1"
    assert credential.calls == [("https://example/.default",)]
    provider.invalidate()
    assert await provider.get() == "sync-2"
