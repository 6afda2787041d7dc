"""The gateway's shared limits on a Redis that requires a password, as compose runs it (the password
in a file, given to Redis through its config on stdin and to the gateway as REDIS_PASSWORD_FILE):
the buckets are kept there; a gateway without the password is refused by Redis and limits in
its own process instead."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from cradle.layout import free_port
from gateway.config import RateLimit
from gateway.ratelimit import make_limiter
from tests.conftest import gateway_settings
from tests.support import eventually


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A redis-server of the test's own, its password read from a file the way compose's is."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine")
    password_file = tmp_path / "redis-password"
    password_file.write_text(uuid.uuid4().hex + "\n")
    port = free_port()
    config = f'requirepass "{password_file.read_text().strip()}"\nport {port}\nbind 127.0.0.1\n'
    process = subprocess.Popen(
        ["redis-server", "--save", "", "--appendonly", "no", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    process.stdin.write(config.encode())
    process.stdin.close()
    yield f"redis://127.0.0.1:{port}/0", password_file
    process.terminate()
    process.wait(10)


async def test_the_limits_live_in_a_redis_reached_with_the_password_from_its_file(
    protected_redis: tuple[str, Path], keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, password_file = protected_redis
    password = password_file.read_text().strip()
    owner = redis.Redis.from_url(url, password=password)

    async def answers() -> bool:
        try:
            return bool(await owner.ping())
        except redis.ConnectionError:
            return False

    await eventually(answers)
    prefix = f"cradle-test:{uuid.uuid4().hex}:"
    limit = RateLimit(rate=0.01, burst=2)

    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(password_file))
    settings = gateway_settings(database_url="sqlite+aiosqlite:///:memory:", keys=keys, redis_url=url)
    limiter = make_limiter(settings.redis_url, prefix=prefix)
    try:
        decisions = [(await limiter.take("client-a", limit)).allowed for _ in range(3)]
    finally:
        await limiter.close()
    assert decisions == [True, True, False]
    assert await owner.exists(prefix + "client-a")  # the bucket is Redis's, shared by every replica

    # Without the password Redis refuses the gateway: it limits on its own, and writes nothing there.
    monkeypatch.delenv("REDIS_PASSWORD_FILE")
    settings = gateway_settings(database_url="sqlite+aiosqlite:///:memory:", keys=keys, redis_url=url)
    anonymous = make_limiter(settings.redis_url, prefix=prefix)
    try:
        assert (await anonymous.take("client-b", limit)).allowed
    finally:
        await anonymous.close()
    assert not await owner.exists(prefix + "client-b")
    await owner.aclose()
