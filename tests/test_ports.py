"""Ports chosen for programs that bind them later (nats-server, a `cradle up` under test): outside
the range the kernel takes outgoing connections' local ports from, so none of those takes one
between the choice and the bind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cradle import layout
from cradle.layout import EPHEMERAL_FLOOR, free_port


def test_a_chosen_port_is_below_the_ephemeral_range_and_free() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(EPHEMERAL_FLOOR <= port < low for port in ports)
    assert len(ports) > 40  # at random, so two suites side by side seldom meet
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def test_consecutive_ports_skip_a_taken_one(monkeypatch: pytest.MonkeyPatch) -> None:
    first, other = free_port(count=2), free_port(count=2)
    draws = iter([first, other])
    monkeypatch.setattr(layout.random, "randrange", lambda *_: next(draws))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 1))  # the second of the first draw's pair
        assert free_port(count=2) == other
