"""A supervisor killed outright (SIGKILL, the OOM killer) takes its children with it: the kernel
signals each (PR_SET_PDEATHSIG), so no service or NATS server runs on without `cradle up`, on a
data directory whose lock died with it."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

import pytest

from tests.support import eventually

SUPERVISOR = textwrap.dedent(
    """
    import asyncio
    from rich.console import Console
    from cradle.supervisor import Supervisor

    async def main():
        child = await Supervisor(Console()).spawn("registry", ["sleep", "600"], {})
        print(child.process.pid, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
async def test_a_killed_supervisor_leaves_no_child_running() -> None:
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUPERVISOR, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert supervisor.stdout is not None
        child = int(await supervisor.stdout.readline())
        assert alive(child)
        supervisor.send_signal(signal.SIGKILL)
        await supervisor.wait()
        await eventually(lambda: not alive(child))
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
