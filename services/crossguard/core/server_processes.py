"""One gRPC service served by several processes sharing one port (SO_REUSEPORT).

Python runs one thread of Python code at a time per process. A model server on N CPUs that
keeps its model calls, tokenisation and gRPC handling in one process spends part of its time
with cores idle behind that lock; N processes with one model call at a time each do not (the
pattern of grpc's own `examples/python/multiprocessing`). The kernel spreads incoming
connections over the processes.

The supervisor (the process that was started) reserves the port, starts `count` children with
the `spawn` method (no fork after gRPC or onnxruntime threads exist), prints `PORT <n>` once
every child serves, forwards SIGTERM/SIGINT to them (each drains on its own: NOT_SERVING,
grace period, close) and exits non-zero if a child dies on its own, so that the orchestrator
restarts the whole set. Children die with the supervisor even when it is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

# A child entry point: serve on `port` until SIGTERM; call `on_ready()` once serving. Must be
# picklable (children are spawned): a module-level function, or a functools.partial of one.
ChildMain = Callable[[int, Callable[[], None]], None]

_PR_SET_PDEATHSIG = 1
# Beyond the children's own grace period: time to close models and exit.
_EXIT_MARGIN_SECONDS = 10.0
# How often the supervisor looks at its stop flag while waiting on the children.
_POLL_SECONDS = 0.5


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket on host:port; port 0 picks a free one. Held
    open while the children serve so that no other program takes the port meanwhile."""
    bare = host.strip("[]") or None
    family, kind, proto, _, address = socket.getaddrinfo(
        bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the supervisor dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_entry(
    child: ChildMain, port: int, ready: multiprocessing.connection.Connection, supervisor: int
) -> None:
    # A terminal's Ctrl-C reaches the whole process group; the supervisor turns it into one
    # SIGTERM per child, which the child handles (or, while loading, dies of) cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    # Compared with the supervisor's pid, not with 1: in a container the supervisor often is
    # pid 1, and under a subreaper an orphan's parent is not 1.
    if os.getppid() != supervisor:  # it died before prctl took effect
        return

    def on_ready() -> None:
        ready.send(os.getpid())
        ready.close()

    child(port, on_ready)


class _Supervisor:
    """The children and what the supervisor knows about them (see serve_in_processes)."""

    def __init__(self, grace_seconds: float) -> None:
        self.procs: list[Any] = []
        self.readers: list[multiprocessing.connection.Connection] = []
        self.stopping = False
        self.failed = False
        self.grace_seconds = grace_seconds

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        """Ask every running child to drain (idempotent; also the signal handler)."""
        self.stopping = True
        for p in self.procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    def fail(self, message: str, proc: Any = None) -> None:
        """A child ended without being asked: stop the rest, exit non-zero."""
        if not self.stopping:
            extra = {} if proc is None else {"server_process": proc.name, "exit": proc.exitcode}
            log.error(message, extra=extra)
            self.failed = True
        self.stop()

    def start(self, count: int, child: ChildMain, port: int, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        for k in range(count):
            if self.stopping:
                return
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child_entry,
                args=(child, port, writer, os.getpid()),
                name=f"{name}-{k}",
            )
            try:
                proc.start()
            except BaseException:
                reader.close()
                raise
            finally:
                writer.close()
            self.procs.append(proc)
            self.readers.append(reader)
            if self.stopping:  # a signal between start() and append(): this one too
                self.stop()

    def wait_ready(self) -> bool:
        """True once every child serves; False if the set is stopping first."""
        pending = set(self.readers)
        while pending and not self.stopping:
            sentinels = {p.sentinel: p for p in self.procs}
            for obj in multiprocessing.connection.wait([*pending, *sentinels], _POLL_SECONDS):
                if obj in sentinels:
                    self.fail("server process exited before serving", sentinels[obj])
                    break
                assert isinstance(obj, multiprocessing.connection.Connection)
                pending.discard(obj)
                try:
                    obj.recv()
                except EOFError:  # closed without a word: the child is dying
                    self.fail("server process exited before serving")
                    break
        return not self.stopping

    def supervise(self) -> None:
        """Until every child has exited: a child ending on its own stops the rest; after a
        stop, children still running past their grace period are killed."""
        deadline: float | None = None
        while any(p.exitcode is None for p in self.procs):
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.grace_seconds + _EXIT_MARGIN_SECONDS
            alive = [p.sentinel for p in self.procs if p.exitcode is None]
            # A bounded wait: a stop signal (handled between waits) must start the deadline.
            multiprocessing.connection.wait(alive, _POLL_SECONDS)
            if not self.stopping:
                dead = [p for p in self.procs if p.exitcode is not None]
                if dead:
                    self.fail("server process exited; stopping the others", dead[0])
            elif deadline is not None and time.monotonic() >= deadline:
                for p in self.procs:
                    if p.exitcode is None:
                        log.error(
                            "server process did not stop in time; killing it",
                            extra={"server_process": p.name},
                        )
                        p.kill()

    def exit_code(self) -> int:
        if self.failed:
            return 1
        # A child still loading its model when the stop came ends by the signal itself.
        clean = (0, -signal.SIGTERM) if self.stopping else (0,)
        return 0 if all(p.exitcode in clean for p in self.procs) else 1

    def close(self) -> None:
        self.stop()
        for p in self.procs:
            p.join(timeout=1.0)
        for reader in self.readers:
            reader.close()


def serve_in_processes(
    count: int,
    child: ChildMain,
    *,
    host: str,
    port: int,
    grace_seconds: float,
    name: str,
) -> int:
    """Run `count` children of `child` on one port until SIGTERM/SIGINT; returns the exit
    code (0: every child stopped cleanly on request). Prints `PORT <n>` on stdout once all
    serve, as serve_forever does."""
    sup = _Supervisor(grace_seconds)
    previous = {s: signal.signal(s, sup.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    sock: socket.socket | None = None
    try:
        sock = reserve_port(host, port)
        bound = int(sock.getsockname()[1])
        sup.start(count, child, bound, name)
        if sup.wait_ready():
            log.info("serving from %d processes", count, extra={"port": bound, "processes": count})
            print(f"PORT {bound}", flush=True)
        sup.supervise()
        return sup.exit_code()
    finally:
        sup.close()
        if sock is not None:
            sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
