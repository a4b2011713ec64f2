"""A stop request that a signal handler may raise.

``threading.Event.set`` takes the event's lock. A signal handler runs in the main thread between
two of its bytecodes, so when the main thread is inside ``Event.wait`` holding that lock (it
does, briefly, around every wait), a handler that sets the event waits for itself forever: a
process that ignores its SIGTERM. :class:`StopFlag` takes no lock: setting it is an assignment,
and waiting for it polls in short sleeps.
"""

from __future__ import annotations

import time


class StopFlag:
    """Set once, by a signal handler or any thread; seen by ``is_set`` and ``wait`` (the
    ``threading.Event`` interface, less ``clear``).

    >>> flag = StopFlag()
    >>> flag.is_set(), flag.wait(0.01)
    (False, False)
    >>> flag.set()
    >>> flag.is_set(), flag.wait(60)
    (True, True)
    """

    poll_s = 0.02  # how soon a waiter sees the flag set

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` seconds have passed; whether it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = self.poll_s if deadline is None else min(self.poll_s, deadline - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True
