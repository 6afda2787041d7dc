"""One process of `cradle up`: uvicorn serving a process's app on a listening socket the supervisor
bound and handed down. The supervisor picks the port by binding it, so no other program can take it
between the choice and the child's bind (which, with ports chosen first and bound later, happened on
a busy machine: the child failed, and another program answered in its place)."""

from __future__ import annotations

import socket
import sys

import uvicorn

from cradle.services import PROCESSES


def main(argv: list[str] | None = None) -> None:
    name, fd = (argv if argv is not None else sys.argv[1:])[:2]
    listening = socket.socket(fileno=int(fd))  # family and type read from the descriptor
    config = uvicorn.Config(
        PROCESSES[name].app,
        factory=True,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    main()
