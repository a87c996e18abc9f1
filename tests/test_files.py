"""Core file helpers: appends that never leave half a record, write errors people can act on, atomic swaps,
and signals held for a whole critical section whichever thread the system delivers them to."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from cool_runner.errors import OutputError, Terminated
from cool_runner.files import append_bytes, append_locked, exchange, write_error
from cool_runner.signals import SignalHold


def test_a_failed_or_short_append_is_truncated_back(tmp_path, monkeypatch):
    path = tmp_path / "log.yaml"
    path.write_bytes(b"---\na: 1\n")
    real = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            return real(fd, bytes(data[: len(data) // 2]))  # a short write: the disk is filling up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        append_bytes(path, b"---\nb: 2\nc: 3\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"---\na: 1\n"
    assert append_bytes(path, b"---\nb: 2\n") == 9
    assert path.read_bytes() == b"---\na: 1\n---\nb: 2\n"


@pytest.mark.parametrize("before, marker, after", [
    pytest.param(b"---\na: 1\n---\nb: 2\nc: [1, ", b"---", b"---\na: 1\n", id="record"),
    pytest.param(b'{"a":1}\n{"b":', b"", b'{"a":1}\n', id="line"),
    pytest.param(b"no newline and no marker", b"---", b"no newline and no marker\n", id="unknown"),
])
def test_what_a_dead_writer_left_is_cut_before_appending(tmp_path, caplog, before, marker, after):
    path = tmp_path / "file"
    path.write_bytes(before)
    append_bytes(path, b"NEW\n", record_start=marker)
    assert path.read_bytes() == after + b"NEW\n"


@pytest.mark.parametrize("code, fragment", [
    pytest.param(errno.ENOSPC, "log.yaml: cannot append: no space left on device (free some space; then resume)",
                 id="ENOSPC"),
    pytest.param(errno.EIO, "log.yaml: cannot append: input/output error (the disk or network file system failed",
                 id="EIO"),
    pytest.param(errno.EACCES, "log.yaml: cannot append: permission denied (check the permissions", id="EACCES"),
    pytest.param(errno.EISDIR, "log.yaml: cannot append: it is a folder (name a file instead; then resume)",
                 id="EISDIR"),
])
def test_write_errors_say_which_file_what_and_what_to_do(code, fragment):
    error = write_error("log.yaml", OSError(code, os.strerror(code)), "append", "then resume")
    assert isinstance(error, OutputError) and error.exit_code == 1 and error.file == "log.yaml"
    assert fragment in str(error) and "\n" not in str(error)


def test_appending_to_a_folder_is_one_clear_error(tmp_path):
    (tmp_path / "logs").mkdir()
    with pytest.raises(OutputError) as caught:
        append_locked(tmp_path / "logs", "---\na: 1\n")
    assert str(caught.value) == f"{tmp_path / 'logs'}: cannot append: it is a folder (name a file, e.g. logs/run.yaml)"
    assert not (tmp_path / "logs.lock").exists()


def test_exchange_swaps_two_files(tmp_path):
    (tmp_path / "a").write_text("A")
    (tmp_path / "b").write_text("B")
    if not exchange(str(tmp_path / "a"), str(tmp_path / "b")):
        pytest.skip("this file system cannot swap files")
    assert ((tmp_path / "a").read_text(), (tmp_path / "b").read_text()) == ("B", "A")


def _signal_from_another_thread(signum: int) -> None:
    """Deliver `signum` to a thread that is not the main one, as the system may do with a process signal."""
    ready = threading.Event()
    done = threading.Event()

    def background():
        ready.set()
        done.wait(5)

    thread = threading.Thread(target=background)
    thread.start()
    ready.wait(5)
    signal.pthread_kill(thread.ident, signum)
    time.sleep(0.05)
    done.set()
    thread.join(5)


def test_a_signal_on_another_thread_is_held_until_the_section_ends():
    hold = SignalHold()
    steps = []
    with pytest.raises(KeyboardInterrupt), hold.held():
        _signal_from_another_thread(signal.SIGINT)
        for _ in range(1000):  # plenty of chances for Python to run the handler in the main thread
            steps.append(1)
        steps.append("end of section")
    assert steps[-1] == "end of section"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_signal_acts_where_a_released_section_begins():
    hold = SignalHold()
    stops = []

    def terminate(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with hold.held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            try:
                with hold.released():
                    stops.append("module ran")
            except Terminated as stop:  # SIGTERM wins over Ctrl-C: it must put the experiment back
                stops.append(stop.signum)
            stops.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stops == [signal.SIGTERM, "after"] and hold.pending == []


def test_sigterm_with_its_default_action_ends_the_process_after_the_section(tmp_path):
    script = """
import os, signal, sys
from cool_runner.signals import held_signals
with held_signals():
    os.kill(os.getpid(), signal.SIGTERM)
    print("finished the section", flush=True)
print("never here", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -signal.SIGTERM
    assert done.stdout == "finished the section\n"
