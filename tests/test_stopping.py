"""The stop flag that signal handlers set: it never waits for the thread it interrupts."""

import subprocess
import sys
import textwrap
import threading

import pytest

from streamssl.stopping import StopFlag

# A SIGUSR1 whose handler sets the flag is raised at the k-th line that runs inside ``wait``,
# for every k, so the handler runs at each point of the wait (with whatever the wait holds).
SIGNAL_AT_EVERY_LINE = textwrap.dedent("""
    import signal, sys, threading
    from streamssl.stopping import StopFlag
    make = threading.Event if sys.argv[1] == "Event" else StopFlag
    k = 0
    while True:
        k += 1
        flag, lines = make(), [0]
        signal.signal(signal.SIGUSR1, lambda signum, frame: flag.set())
        def trace(frame, event, arg):
            if event == "line" and not flag.is_set():
                lines[0] += 1
                if lines[0] == k:
                    signal.raise_signal(signal.SIGUSR1)
            return trace
        sys.settrace(trace)
        flag.wait(0.001)
        sys.settrace(None)
        if lines[0] < k:  # every line of the wait has had its signal
            print(k - 1)
            break
""")


def signal_at_every_line(kind: str, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SIGNAL_AT_EVERY_LINE, kind], capture_output=True, text=True,
                          timeout=timeout_s)


def test_a_signal_handler_can_set_the_flag_at_any_point_of_a_wait():
    done = signal_at_every_line("StopFlag", timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 3  # the wait ran lines, and each was interrupted


def test_the_same_probe_hangs_a_threading_event():
    """Why the flag exists: ``Event.set`` in a handler waits for the lock its own thread holds."""
    with pytest.raises(subprocess.TimeoutExpired):  # (it would wait forever)
        signal_at_every_line("Event", timeout_s=5)


def test_a_wait_ends_when_another_thread_sets_the_flag():
    flag = StopFlag()
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(60) and flag.is_set()
    assert flag.wait(0) and flag.wait()
