"""The sender's HTTP client against real sockets: raw servers on 127.0.0.1 that answer as receivers
in the wild do (chunked, Connection: close, 1xx first, never, a body without end, a kept-alive
connection closed under it, TLS with the URL's name)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.delivery.service.targets import Target
from services.delivery.service.webhook_client import (
    EXCERPT_BYTES,
    WebhookClient,
    WebhookError,
    WebhookTimeout,
)

pytestmark = pytest.mark.asyncio

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]
HEADERS = [("content-type", "application/cloudevents+json"), ("webhook-id", "msg_1")]


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: int = 0


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def serving(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """A receiver that reads each request whole and lets `answer` reply (True: keep the connection)."""
    server = Server(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                server.requests.append(request)
                if not await answer(reader, writer, len(server.requests)):
                    break
        finally:
            server.closed += 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server
        listener.close()


def reply(raw: bytes, keep: bool = True) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep

    return answer


def target(server: Server, *, scheme: str = "http", host: str = "127.0.0.1") -> Target:
    return Target(scheme=scheme, host=host, port=server.port, path="/hooks/cradle?x=1", address="127.0.0.1")


def client(tls: ssl.SSLContext | None = None) -> WebhookClient:
    return WebhookClient(tls=tls or ssl.create_default_context(), max_idle=4, connect_timeout=2.0)


async def post(webhooks: WebhookClient, to: Target, timeout: float = 2.0) -> tuple[int, bytes]:
    answer = await webhooks.post("subscription-1", to, HEADERS, b'{"id":"1"}', timeout=timeout)
    return answer.status, answer.excerpt


async def test_a_kept_alive_connection_carries_the_next_delivery() -> None:
    async with serving(reply(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (204, b"")
        assert await post(webhooks, target(server)) == (204, b"")
        assert server.connections == 1 and len(server.requests) == 2
        head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"POST /hooks/cradle?x=1 HTTP/1.1"
        assert f"host: 127.0.0.1:{server.port}".encode() in head and b"webhook-id: msg_1" in head
        assert server.requests[0].endswith(b'\r\n\r\n{"id":"1"}')
        webhooks.close()


async def test_a_chunked_reply_is_read_and_the_connection_kept() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthank\r\n4\r\n you\r\n0\r\n\r\n"
    async with serving(reply(chunked)) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (200, b"thank you")
        assert await post(webhooks, target(server)) == (200, b"thank you")
        assert server.connections == 1
        webhooks.close()


async def test_a_second_reply_nobody_asked_for_changes_nothing_and_ends_the_connection() -> None:
    twice = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\noops"
    async with serving(reply(twice)) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (204, b"")
        assert await post(webhooks, target(server)) == (204, b"")
        assert server.connections == 2
        webhooks.close()


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with serving(reply(closing, keep=False)) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (200, b"ok")
        assert await post(webhooks, target(server)) == (200, b"ok")
        assert server.connections == 2
        webhooks.close()


async def test_interim_replies_are_skipped_for_the_final_one() -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\naccepted"
    )
    async with serving(reply(interim)) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (202, b"accepted")
        assert await post(webhooks, target(server)) == (202, b"accepted")
        assert server.connections == 1
        webhooks.close()


async def test_a_switch_of_protocols_is_no_answer() -> None:
    async with serving(reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")) as server:
        with pytest.raises(WebhookError, match="switched protocols"):
            await post(client(), target(server))


async def test_a_redirect_is_an_answer_never_followed() -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n"
    async with serving(reply(moved)) as server:
        assert await post(client(), target(server)) == (302, b"")
        assert len(server.requests) == 1


async def test_a_receiver_that_never_answers_times_out_at_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(30)
        return False

    async with serving(silent) as server:
        started = time.monotonic()
        with pytest.raises(WebhookTimeout):
            await post(client(), target(server), timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2


async def test_a_huge_body_is_read_to_its_first_kib_only() -> None:
    # 64 MiB announced; the receiver sends the first 64 KiB and waits for the sender to hang up.
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
        writer.write(b"x" * 65536)
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 10)  # b"" once the sender closes
        return False

    async with serving(huge) as server:
        webhooks = client()
        started = time.monotonic()
        status, excerpt = await post(webhooks, target(server), timeout=5)
        assert status == 500 and excerpt == b"x" * EXCERPT_BYTES
        assert time.monotonic() - started < 2
        # The rest is never read: the connection is dropped, and the receiver sees it go.
        for _ in range(100):
            if server.closed:
                break
            await asyncio.sleep(0.02)
        assert server.closed == 1
        assert await post(webhooks, target(server), timeout=5) == (500, b"x" * EXCERPT_BYTES)
        assert server.connections == 2


async def test_a_body_without_length_ends_with_the_connection() -> None:
    async with serving(reply(b"HTTP/1.1 200 OK\r\n\r\nreceived", keep=False)) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (200, b"received")
        assert await post(webhooks, target(server)) == (200, b"received")
        assert server.connections == 2


async def test_a_status_line_is_an_answer_even_if_the_body_never_ends() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(30)
        return False

    async with serving(endless) as server:
        assert await post(client(), target(server), timeout=0.3) == (200, b"partial")


async def test_a_kept_alive_connection_closed_under_a_request_is_retried_once_on_a_fresh_one() -> None:
    # The first connection answers once, then takes the next request and closes without a word (a
    # receiver's keep-alive timer firing as the request arrived).
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 2:
            return False
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        return True

    async with serving(once) as server:
        webhooks = client()
        assert await post(webhooks, target(server)) == (204, b"")
        assert await post(webhooks, target(server)) == (204, b"")
        # Sent twice (at least once, with the same webhook-id for the receiver to drop a repeat).
        assert server.connections == 2 and len(server.requests) == 3
        assert server.requests[1] == server.requests[2]
        webhooks.close()


async def test_a_fresh_connection_closed_without_a_reply_is_not_retried() -> None:
    async with serving(reply(b"", keep=False)) as server:
        with pytest.raises(WebhookError, match="closed"):
            await post(client(), target(server))
        assert len(server.requests) == 1


async def test_nothing_listening_is_an_error() -> None:
    async with serving(reply(b"")) as server:
        port = server.port
    gone = Target(scheme="http", host="127.0.0.1", port=port, path="/", address="127.0.0.1")
    with pytest.raises(WebhookError, match="could not connect"):
        await client().post("subscription-1", gone, HEADERS, b"{}", timeout=2)


async def test_a_changed_address_gets_a_connection_of_its_own() -> None:
    async with (
        serving(reply(b"HTTP/1.1 204 No Content\r\n\r\n")) as first,
        serving(reply(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")) as second,
    ):
        webhooks = client()
        assert await post(webhooks, target(first)) == (204, b"")
        assert await post(webhooks, target(second)) == (202, b"")
        assert first.closed == 1  # the pool of the old address was closed, not reused elsewhere
        webhooks.close()


def certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for `name`, and a client context that
    trusts it (and checks names, as the default context does)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    return server, trusting


async def test_tls_goes_to_the_checked_address_with_the_url_s_name(tmp_path: Path) -> None:
    server_tls, trusting = certificate(tmp_path, "hooks.example")
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment, misc]
    async with serving(reply(b"HTTP/1.1 204 No Content\r\n\r\n"), tls=server_tls) as server:
        webhooks = client(trusting)
        assert await post(webhooks, target(server, scheme="https", host="hooks.example")) == (204, b"")
        assert names == ["hooks.example"]
        assert f"host: hooks.example:{server.port}".encode() in server.requests[0]
        # A certificate for another name is refused: the address alone proves nothing.
        with pytest.raises(WebhookError, match="TLS"):
            await webhooks.post(
                "subscription-2",
                target(server, scheme="https", host="other.example"),
                HEADERS,
                b"{}",
                timeout=2,
            )
        webhooks.close()
