import faulthandler
import os
import signal
import socket
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
REPO = os.environ.get("RINGLINE_SOURCE_DIR") or os.path.dirname(PYDIR)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)


class WatchdogTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise WatchdogTimeout("test took longer than 60 s")


@pytest.fixture(autouse=True)
def _watchdog():
    # every test is bounded: SIGALRM interrupts a blocked poll (EINTR) and
    # fails the test with a traceback; a hang in C dumps all stacks to a
    # file and ends the run
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 60)
    log = open(os.path.join(tempfile.gettempdir(), "ringline-pytest-hang.log"), "w")
    faulthandler.dump_traceback_later(120, exit=True, file=log)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()
        log.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_native(coro, timeout=20, **kw):
    """ringline.run() with a deadline, so a broken test fails instead of hanging."""
    import ringline

    async def guarded():
        return await ringline.wait_for(coro, timeout)
    return ringline.run(guarded(), **kw)
