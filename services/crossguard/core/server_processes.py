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

# A child entry point: serve on `port` until SIGTERM; call `on_ready()` once serving. Must be a
# module-level function (children are spawned, so it is imported by name there).
ChildMain = Callable[[int, Callable[[], None]], None]

_PR_SET_PDEATHSIG = 1
# Beyond the children's own grace period: time to close models and exit.
_EXIT_MARGIN_SECONDS = 10.0


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket on host:port; port 0 picks a free one. Held
    open while the children serve so that no other program takes the port meanwhile."""
    bare = host.strip("[]") or None
    family, kind, proto, _, address = socket.getaddrinfo(
        bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
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


def _child_entry(child: ChildMain, port: int, ready: multiprocessing.connection.Connection) -> None:
    _die_with_parent()
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        return

    def on_ready() -> None:
        ready.send(os.getpid())
        ready.close()

    child(port, on_ready)


def serve_in_processes(
    count: int,
    child: ChildMain,
    *,
    host: str,
    port: int,
    grace_seconds: float,
    name: str,
    announce: Callable[[int], None] | None = None,
) -> int:
    """Run `count` children of `child` on one port until SIGTERM/SIGINT; returns the exit
    code (0: every child stopped cleanly on request). `announce(port)` runs once all serve
    (default: print `PORT <n>` on stdout, as serve_forever does)."""
    sock = reserve_port(host, port)
    bound = int(sock.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    readers: list[multiprocessing.connection.Connection] = []
    stopping = False

    def stop_children(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop_children) for s in (signal.SIGTERM, signal.SIGINT)}
    exit_code = 0
    try:
        for k in range(count):
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child_entry, args=(child, bound, writer), name=f"{name}-{k}")
            proc.start()
            writer.close()
            procs.append(proc)
            readers.append(reader)

        pending = set(readers)
        while pending and not stopping:
            sentinels = {p.sentinel: p for p in procs}
            for obj in multiprocessing.connection.wait([*pending, *sentinels]):
                if obj in sentinels:
                    proc = sentinels[obj]
                    if not stopping:
                        log.error(
                            "server process exited before serving",
                            extra={"server_process": proc.name, "exit_code": proc.exitcode},
                        )
                        exit_code = 1
                        stop_children()
                    break
                assert isinstance(obj, multiprocessing.connection.Connection)
                pending.discard(obj)
                try:
                    obj.recv()
                except EOFError:  # closed without a word: the child is dying
                    if not stopping:
                        log.error("server process exited before serving")
                        exit_code = 1
                        stop_children()
                    break
        if not stopping:
            log.info("serving from %d processes", count, extra={"port": bound, "processes": count})
            (announce or (lambda p: print(f"PORT {p}", flush=True)))(bound)

        deadline: float | None = None
        while any(p.exitcode is None for p in procs):
            if stopping and deadline is None:
                deadline = time.monotonic() + grace_seconds + _EXIT_MARGIN_SECONDS
            alive = [p.sentinel for p in procs if p.exitcode is None]
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            multiprocessing.connection.wait(alive, timeout)
            if not stopping:
                dead = [p for p in procs if p.exitcode is not None]
                if dead:
                    log.error(
                        "server process exited; stopping the others",
                        extra={"server_process": dead[0].name, "exit_code": dead[0].exitcode},
                    )
                    exit_code = 1
                    stop_children()
            elif deadline is not None and time.monotonic() >= deadline:
                for p in procs:
                    if p.exitcode is None:
                        log.error(
                            "server process did not stop in time; killing it",
                            extra={"server_process": p.name},
                        )
                        p.kill()
        for p in procs:
            p.join()
            # A child still loading its model when the stop came ends by the signal itself.
            clean = (0, -signal.SIGTERM) if stopping else (0,)
            if p.exitcode not in clean and exit_code == 0:
                exit_code = 1
        return exit_code
    finally:
        stop_children()
        for p in procs:
            p.join(timeout=1.0)
        for reader in readers:
            reader.close()
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
