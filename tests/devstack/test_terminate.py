"""`terminate` returns only when the process is gone and its port is closed, killing a process
that ignores SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from aisaas.devstack.base import pid_alive, port_accepts, terminate, wait_until
from tests.devstack.test_services import free_ports

LISTENER = textwrap.dedent(
    """
    import signal, socket, sys, time
    if sys.argv[2] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        time.sleep(1)
    """
)


@pytest.mark.parametrize("on_sigterm", ["exit", "ignore"])
def test_terminate_waits_for_the_process_and_its_port(on_sigterm: str) -> None:
    # given a listener that exits on SIGTERM, or one that ignores it
    (port,) = free_ports(1)
    process = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), on_sigterm])
    try:
        assert wait_until(lambda: port_accepts("127.0.0.1", port), timeout=10)

        # when it is terminated with a short timeout
        terminate(process.pid, "python", host="127.0.0.1", port=port, timeout=1)

        # then on return the process is gone and its port closed
        assert not pid_alive(process.pid, "python")
        assert not port_accepts("127.0.0.1", port)
        assert process.wait(timeout=5) == (-15 if on_sigterm == "exit" else -9)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
