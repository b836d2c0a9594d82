"""Backend calls in a separate worker process, with a time limit per case.

A third-party backend is code the harness does not control: it may call ``sys.exit(0)``, loop forever or
crash the interpreter. Run in the harness's own process, the first makes ``fp8ref conform`` exit 0 with no
report, the second hangs it and the third kills it. :class:`Isolated` runs every backend call in a worker
process (started with ``spawn``: a fresh interpreter, nothing inherited but the arguments) and waits at
most ``timeout`` seconds for each case:

* the worker exits (``sys.exit``, ``os._exit``) -> the case is an error "backend process exited with
  status 0 during op quantize";
* it is killed by a signal (a segmentation fault) -> "backend process killed by signal 11 (SIGSEGV) during
  op quantize";
* no answer within ``timeout`` -> the worker is killed; "timed out after 2 s during op quantize".

The following case starts a new worker. The operation in progress is published by the worker through
shared memory, so that it can be named after a crash. The worker's standard output goes to standard
error (what a backend prints does not mix with the report), and it ignores Ctrl-C (the harness stops it).
Starting the worker (importing the backend, building it) is not counted in the case's time: it has its own
limit, :data:`START_TIMEOUT` or ``timeout`` when larger.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from fp8ref.backends.base import OPS, Backend, BackendUnavailable, Capabilities
from fp8ref.conform.contract import CheckedBackend
from fp8ref.conform.execute import Lost, describe_exception, during
from fp8ref.golden.ops import ALL_SUITES, suite_module

__all__ = ["Isolated", "BackendSpec", "DEFAULT_TIMEOUT", "START_TIMEOUT"]

#: default limit of one case, in seconds (``fp8ref conform --timeout``)
DEFAULT_TIMEOUT = 120.0
#: least time a worker gets to start (import fp8ref and the backend, build the backend)
START_TIMEOUT = 120.0
_CONTEXT = "spawn"


@dataclass(frozen=True)
class BackendSpec:
    """How the worker gets its backend: by registry ``name`` (built-ins and entry points, which the worker
    sees as this process does); for a name registered in this process only, with its ``pickled`` factory,
    which the worker registers first; or as a ``pickled`` instance (``name`` None)."""

    label: str
    name: str | None = None
    pickled: bytes | None = None

    @classmethod
    def of(cls, backend: str | Backend) -> BackendSpec:
        """The spec of a backend name or instance; :class:`BackendUnavailable` when what the worker needs
        cannot be pickled, ``ValueError`` for an unknown name."""
        from fp8ref.backends import registry

        if isinstance(backend, str):
            if registry.origin(backend) != "registered":
                return cls(backend, name=backend)
            return cls(backend, name=backend, pickled=_pickle(backend, registry.factory(backend), "factory"))
        return cls(backend.name, pickled=_pickle(backend.name, backend, "instance"))


def _pickle(name: str, obj: Any, what: str) -> bytes:
    try:
        return pickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing
        raise BackendUnavailable(
            f"backend {name!r} cannot run in a separate process: its {what} cannot be pickled "
            f"({describe_exception(exc)}); run it in this process (isolate=False, --no-isolate)") from exc


def _plain_capabilities(caps: Any) -> Capabilities:
    """A :class:`Capabilities` built from ``caps``' fields (a subclass would need the backend's module to
    unpickle in the harness)."""
    if not isinstance(caps, Capabilities):
        raise TypeError(f"capabilities is a {type(caps).__name__}, not an fp8ref.backends.Capabilities")
    return Capabilities(**{f.name: getattr(caps, f.name) for f in fields(Capabilities)})


def _load(spec: BackendSpec) -> Backend:
    if spec.name is not None:
        from fp8ref.backends import registry

        if spec.pickled is not None:
            registry.register(spec.name, pickle.loads(spec.pickled), replace=True)
        return registry.get(spec.name)
    obj = pickle.loads(spec.pickled or b"")
    if not isinstance(obj, Backend):
        raise TypeError(f"the unpickled object is a {type(obj).__name__}, not an fp8ref.backends.Backend")
    return obj


def _worker(conn: Any, spec: BackendSpec, current: Any) -> None:
    """The worker's main loop: build the backend, answer ``ready``, then run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def track(op: str | None) -> None:
        current.value = OPS.index(op) if op in OPS else -1

    try:
        for suite in ALL_SUITES:  # the runners' imports belong to the start, not to the first case's time
            suite_module(suite)
        backend = _load(spec)
        caps = _plain_capabilities(backend.capabilities)
    except Exception as exc:  # noqa: BLE001 - reported to the harness as the reason
        reason = str(exc) if isinstance(exc, BackendUnavailable) else describe_exception(exc)
        conn.send(("unavailable", reason))
        return
    conn.send(("ready", str(backend.name), caps))
    checked = CheckedBackend(backend, track)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task[0] != "call":
            return
        checked.op = None
        try:
            result = ("done", task[1](checked, *task[2]))
        except Exception as exc:  # noqa: BLE001 - the functions sent here report their own errors
            result = ("failed", f"{describe_exception(exc)} {during(checked.op)}")
        conn.send(result)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-exitcode}{name}"
    return f"exited with status {exitcode}"


class Isolated:
    """Runs the backend's calls in a worker process (see the module docstring)."""

    isolated = True

    def __init__(self, spec: BackendSpec, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.spec = spec
        self.timeout = float(timeout)
        self._ctx = multiprocessing.get_context(_CONTEXT)
        self._proc: Any = None
        self._conn: Any = None
        self._current: Any = None
        self._broken: str | None = None  # why a restart failed: later cases are not tried
        self._last_op: str | None = None  # the operation in progress when the worker was last lost
        self._busy = False  # a task was sent and its answer not yet received
        self.name, self.capabilities = self._start()

    # ---- the worker --------------------------------------------------------------------------------------
    def _start(self) -> tuple[str, Capabilities]:
        """Start a worker; (name, capabilities) from its ``ready``, or :class:`BackendUnavailable`."""
        parent, child = self._ctx.Pipe()
        self._current = self._ctx.RawValue("b", -1)
        self._proc = self._ctx.Process(target=_worker, args=(child, self.spec, self._current),
                                       name=f"fp8ref-conform-{self.spec.label}", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        reply = self._receive(max(START_TIMEOUT, self.timeout))
        if reply[0] == "ready":
            return reply[1], reply[2]
        self.close()
        if reply[0] == "unavailable":
            raise BackendUnavailable(reply[1])
        raise BackendUnavailable(f"backend {self.spec.label!r} could not be started in a worker process: "
                                 f"{reply[1]}")

    def _op(self) -> str | None:
        i = int(self._current.value)
        return OPS[i] if 0 <= i < len(OPS) else None

    def _receive(self, timeout: float) -> tuple:
        """The worker's next message, or ``("died", how)`` / ``("timeout", how)`` (the worker is then
        gone)."""
        ready = multiprocessing.connection.wait([self._conn, self._proc.sentinel], timeout)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
            except Exception as exc:  # noqa: BLE001 - a message that does not unpickle
                self._kill()
                return ("died", f"sent a message that cannot be read ({describe_exception(exc)})")
        op = self._last_op = self._op()
        if not ready:
            self._kill()
            return ("timeout", f"timed out after {timeout:g} s {during(op)}")
        self._proc.join(5)
        how = _how_it_ended(self._proc.exitcode)
        self._kill()
        return ("died", f"backend process {how} {during(op)}")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def _request(self, task: tuple) -> tuple:
        if self._broken is not None:
            return ("died", self._broken)
        if self._proc is None:
            try:
                self._start()
            except BackendUnavailable as exc:
                self._broken = f"not run: the backend process could not be restarted ({exc})"
                return ("died", self._broken)
        self._current.value = -1
        self._last_op = None
        self._busy = True
        try:
            self._conn.send(task)
        except (OSError, ValueError):  # the worker died between two cases
            return self._receive(0.01)
        reply = self._receive(self.timeout)
        self._busy = False  # (still True when interrupted: close() then kills the worker at once)
        return reply

    # ---- the executor interface ----------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(CheckedBackend(backend), *args)`` in the worker (``fn`` a module-level function, which the
        worker imports), or :class:`~fp8ref.conform.execute.Lost` when the worker exited, crashed or did
        not answer within ``timeout`` seconds."""
        reply = self._request(("call", fn, args))
        if reply[0] == "done":
            return reply[1]
        return Lost(reply[1], self._last_op)

    def close(self) -> None:
        if self._conn is not None and not self._busy:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
            if self._proc is not None:
                self._proc.join(5)
        self._kill()
