"""A module's streams are deleted when it ends (tests/conftest.py): all of them, however many
streams the server holds besides."""

from __future__ import annotations

import secrets

import nats

from tests.conftest import _delete_streams, stream_names


async def test_every_stream_under_the_prefix_goes_past_the_first_page(shared_nats_url: str) -> None:
    prefix = f"TCLEANUP{secrets.token_hex(4).upper()}"
    nc = await nats.connect(shared_nats_url)
    try:
        js = nc.jetstream(timeout=10)
        for n in range(300):  # more than a page of STREAM.LIST (256)
            await js.add_stream(name=f"{prefix}_{n}", subjects=[f"{prefix.lower()}.{n}"])
        await _delete_streams(shared_nats_url, prefix)
        assert [name for name in await stream_names(nc) if name.startswith(prefix)] == []
    finally:
        for name in await stream_names(nc):
            if name.startswith(prefix):
                await nc.jetstream().delete_stream(name)
        await nc.close()
