"""Repository-wide pytest set-up (tests/ and e2e/)."""

from __future__ import annotations

import signal


def pytest_configure() -> None:
    # A shell starts background jobs (`cmd &`, nohup) with SIGINT ignored, and an ignored signal stays
    # ignored across exec: Python then never raises KeyboardInterrupt, in pytest or in the deployer
    # processes the tests start. The Ctrl-C tests need the normal disposition, whoever launched the run.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
