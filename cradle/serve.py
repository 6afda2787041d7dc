"""One process of `cradle up`: uvicorn serving a process's app on a listening socket the supervisor
bound and handed down. The supervisor picks the port by binding it, so no other program can take it
between the choice and the child's bind (which, with ports chosen first and bound later, happened on
a busy machine: the child failed, and another program answered in its place)."""

from __future__ import annotations

import gc

# Start-up builds the app's hundreds of models and routes, whose objects live as long as the
# process: a cyclic collection among them finds nothing, yet cost a tenth of a second's start-up
# (1.09 → 0.95 s of CPU to import the registry). Collection resumes once the app is built, with those
# objects frozen out of its scans.
gc.disable()

import socket  # noqa: E402
import sys  # noqa: E402

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from cradle.services import PROCESSES  # noqa: E402


def built(name: str) -> FastAPI:
    """The process's app, then collection resumed with start-up's objects frozen."""
    app = PROCESSES[name].create_app()
    gc.freeze()
    gc.enable()
    return app


def main(argv: list[str] | None = None) -> None:
    name, fd = (argv if argv is not None else sys.argv[1:])[:2]
    listening = socket.socket(fileno=int(fd))  # family and type read from the descriptor
    config = uvicorn.Config(
        lambda: built(name),
        factory=True,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    main()
