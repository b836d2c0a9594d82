"""The backend registry: built-ins, programmatic registration and the ``fp8ref.backends`` entry-point group.

A registered backend is a *factory*: a :class:`~fp8ref.backends.base.Backend` subclass or any callable that
takes no arguments and returns a ``Backend`` instance. Factories run on first use (``get``), so listing the
names imports nothing; a factory that cannot run here (torch not installed, no CUDA device) raises
:class:`~fp8ref.backends.base.BackendUnavailable` and the backend is reported as unavailable with that reason.

Third-party packages register through the entry-point group ``fp8ref.backends``: the entry-point *name* is
the backend name, its *value* ``"module:attr"`` names the factory. In ``pyproject.toml``::

    [project.entry-points."fp8ref.backends"]
    my-kernel = "my_package.fp8ref_backend:MyKernelBackend"

Built-in names cannot be replaced by an entry point (the entry point is reported as shadowed); the
programmatic :func:`register` can replace any name with ``replace=True``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fp8ref.backends.base import Backend, BackendUnavailable

__all__ = ["ENTRY_POINT_GROUP", "BUILTINS", "BackendInfo", "register", "unregister", "get", "available",
           "names", "describe", "reset", "origin", "factory", "is_builtin"]

ENTRY_POINT_GROUP = "fp8ref.backends"

# name -> "module:attr" of the factory (imported lazily)
BUILTINS: dict[str, str] = {
    "reference": "fp8ref.backends.reference:ReferenceBackend",
    "ml_dtypes": "fp8ref.backends.mldtypes:MlDtypesBackend",
    "torch-cpu": "fp8ref.backends.torch_backend:torch_cpu",
    "torch-cpu-fastaccum": "fp8ref.backends.torch_backend:torch_cpu_fastaccum",
    "torch-cuda": "fp8ref.backends.torch_backend:torch_cuda",
    "torch-cuda-fastaccum": "fp8ref.backends.torch_backend:torch_cuda_fastaccum",
}

Factory = Callable[[], Backend]


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend: where it comes from and whether it runs here."""

    name: str
    origin: str  # "builtin", "registered", or "entry point <value> (<distribution>)"
    available: bool
    reason: str | None  # why not available (None when available)
    backend: Backend | None  # the instance when available


_registered: dict[str, Factory | str] = {}
_instances: dict[str, Backend] = {}
_entry_points: dict[str, tuple[str, str]] | None = None  # name -> (value, distribution)
_shadowed: list[str] = []


def reset() -> None:
    """Forget cached instances and re-scan entry points on next use (programmatic registrations stay)."""
    global _entry_points
    _instances.clear()
    _entry_points = None
    _shadowed.clear()


def register(name: str, factory: Factory | type[Backend] | Backend | str, *, replace: bool = False) -> None:
    """Register ``factory``: a Backend subclass or instance, a zero-argument callable returning a Backend, or
    a ``"module:attr"`` string naming one. Its ``Backend.name`` must equal ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not (isinstance(factory, Backend) or callable(factory)
            or (isinstance(factory, str) and ":" in factory)):
        raise TypeError(f"factory must be a Backend subclass or instance, a callable or 'module:attr', "
                        f"got {factory!r}")
    if not replace and name in _all_sources():
        raise ValueError(f"name: backend {name!r} is already registered (pass replace=True to replace it)")
    _registered[name] = factory
    _instances.pop(name, None)


def unregister(name: str) -> None:
    """Remove a programmatic registration (built-ins and entry points cannot be removed)."""
    if name not in _registered:
        raise ValueError(f"name: {name!r} was not registered with register()")
    del _registered[name]
    _instances.pop(name, None)


def _scan_entry_points() -> dict[str, tuple[str, str]]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, tuple[str, str]] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
            if ep.name in BUILTINS:
                _shadowed.append(f"{ep.name} = {ep.value} ({dist}): shadowed by the built-in backend")
                continue
            found.setdefault(ep.name, (ep.value, dist))
        _entry_points = found
    return _entry_points


def _all_sources() -> dict[str, tuple[Factory | str, str]]:
    """name -> (factory or 'module:attr', origin), in precedence order: registered > builtin > entry point."""
    out: dict[str, tuple[Factory | str, str]] = {}
    for name, (value, dist) in _scan_entry_points().items():
        out[name] = (value, f"entry point {value} ({dist})")
    for name, value in BUILTINS.items():
        out[name] = (value, "builtin")
    for name, factory in _registered.items():
        out[name] = (factory, "registered")
    return out


def names() -> tuple[str, ...]:
    """Every registered backend name, available here or not (built-ins first, then the rest sorted)."""
    src = _all_sources()
    return tuple([n for n in BUILTINS if n in src] + sorted(n for n in src if n not in BUILTINS))


def _load(spec: Factory | str) -> Any:
    if isinstance(spec, str):
        module, _, attr = spec.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    return spec


def _instantiate(name: str, spec: Factory | str) -> Backend:
    try:
        factory = _load(spec)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r}: cannot import {spec}: {exc}") from exc
    try:
        obj = factory() if callable(factory) and not isinstance(factory, Backend) else factory
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r}: a dependency is missing: {exc}") from exc
    if not isinstance(obj, Backend):
        raise TypeError(f"backend {name!r}: the factory {spec!r} returned {type(obj).__name__}, "
                        "not an fp8ref.backends.Backend")
    if obj.name != name:
        raise ValueError(f"backend {name!r}: the instance is named {obj.name!r}; the registered name and "
                         "Backend.name must agree")
    return obj


def origin(name: str) -> str:
    """Where the backend ``name`` comes from: ``"builtin"``, ``"registered"`` or ``"entry point <value>
    (<distribution>)"``, without building it; ``ValueError`` for an unknown name."""
    src = _all_sources()
    if name not in src:
        raise ValueError(f"unknown backend {name!r}; registered backends: {', '.join(names())}")
    return src[name][1]


def factory(name: str) -> Factory | Backend | str:
    """What ``name`` was registered with (a factory, an instance or ``"module:attr"``), without building it;
    ``ValueError`` for an unknown name."""
    origin(name)
    return _all_sources()[name][0]


def is_builtin(backend: str | Backend) -> bool:
    """Whether ``backend`` (a name or an instance) is one of fp8ref's own :data:`BUILTINS`: a name whose
    origin is ``"builtin"``, or an instance of the very class the built-in factory of its name lives in
    (a subclass defined elsewhere is not built-in)."""
    if isinstance(backend, str):
        return backend in BUILTINS and origin(backend) == "builtin"
    spec = BUILTINS.get(getattr(backend, "name", None) or "")
    if spec is None or origin(backend.name) != "builtin":
        return False
    return type(backend).__module__ == spec.partition(":")[0]


def get(name: str | Backend) -> Backend:
    """The backend registered as ``name`` (a :class:`Backend` instance is returned unchanged).

    Raises ``ValueError`` for an unknown name (listing the known ones) and
    :class:`~fp8ref.backends.base.BackendUnavailable` when the backend cannot run here, with the reason.
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a backend name or a Backend, got {type(name).__name__}")
    if name in _instances:
        return _instances[name]
    src = _all_sources()
    if name not in src:
        raise ValueError(f"unknown backend {name!r}; registered backends: {', '.join(names())}")
    spec, origin = src[name]
    try:
        backend = _instantiate(name, spec)
    except BackendUnavailable:
        raise
    except Exception as exc:
        if origin == "builtin":
            raise
        raise BackendUnavailable(f"backend {name!r} ({origin}) failed to load: "
                                 f"{type(exc).__name__}: {exc}") from exc
    _instances[name] = backend
    return backend


def describe() -> list[BackendInfo]:
    """Every registered backend with its origin and availability (instantiates each one)."""
    out = []
    src = _all_sources()
    for name in names():
        origin = src[name][1]
        try:
            backend = get(name)
        except BackendUnavailable as exc:
            out.append(BackendInfo(name, origin, False, str(exc), None))
        else:
            out.append(BackendInfo(name, origin, True, None, backend))
    return out


def shadowed() -> tuple[str, ...]:
    """Entry points ignored because their name is a built-in's."""
    _scan_entry_points()
    return tuple(_shadowed)


def available() -> tuple[str, ...]:
    """Names of the backends that run here (``get(name)`` succeeds), in :func:`names` order."""
    return tuple(info.name for info in describe() if info.available)
