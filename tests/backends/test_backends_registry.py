"""The registry: built-ins, programmatic registration, entry points (without pip), availability."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fp8ref
from fp8ref import backends
from fp8ref.backends import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_backend"


@pytest.fixture(autouse=True)
def _fresh_registry():
    backends.reset()
    yield
    for name in list(registry._registered):
        backends.unregister(name)
    backends.reset()


def _dist_info(root: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution on ``root``: what pip writes, for importlib.metadata to find."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[fp8ref.backends]\n" + "\n".join(lines) + "\n")


def _example_entry_points() -> dict[str, str]:
    """The entry points declared in the example's pyproject.toml."""
    text = (EXAMPLE / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."fp8ref.backends"]', 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w.-]+)\s*=\s*"([^"]+)"', section, flags=re.M))


def test_builtin_names() -> None:
    assert backends.names()[:6] == ("reference", "ml_dtypes", "torch-cpu", "torch-cpu-fastaccum",
                                    "torch-cuda", "torch-cuda-fastaccum")
    assert "reference" in backends.available()
    assert "ml_dtypes" in backends.available()


def test_get_errors() -> None:
    with pytest.raises(ValueError, match="unknown backend 'nope'.*reference"):
        backends.get("nope")
    with pytest.raises(TypeError, match="name"):
        backends.get(3)  # type: ignore[arg-type]
    be = backends.get("reference")
    assert backends.get(be) is be
    assert backends.get("reference") is be  # cached


def test_torch_missing_is_unavailable_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    infos = {i.name: i for i in backends.describe()}
    for name in ("torch-cpu", "torch-cpu-fastaccum", "torch-cuda", "torch-cuda-fastaccum"):
        assert not infos[name].available
        assert "torch is not installed" in infos[name].reason
    with pytest.raises(backends.BackendUnavailable, match="torch is not installed"):
        backends.get("torch-cpu")
    assert "reference" in backends.available()


def test_cuda_backends_explain_why_not() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(backends.BackendUnavailable, match="no CUDA device"):
        backends.get("torch-cuda")


class _Tiny(backends.Backend):
    name = "tiny"
    capabilities = backends.Capabilities(formats=("E4M3",), rounding=("nearest_even",), saturate=(True,),
                                         ops=("quantize",))

    def quantize(self, x, fmt, *, rounding="nearest_even", saturate=True, srbits=None, srnumbits=None,
                 seed=None, out=None):
        self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        return fp8ref.quantize(x, fmt, saturate=True)


def test_register_and_unregister() -> None:
    backends.register("tiny", _Tiny)
    assert "tiny" in backends.available()
    be = backends.get("tiny")
    assert be.quantize(np.float32(1.0), "E4M3").tolist() == 0x38
    with pytest.raises(backends.Unsupported, match="saturate=False"):
        be.quantize(np.float32(1.0), "E4M3", saturate=False)
    with pytest.raises(backends.Unsupported, match=r"tiny\.scaled_mm"):
        be.scaled_mm(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), a_format="E4M3", b_format="E4M3")
    with pytest.raises(backends.Unsupported, match="amax"):
        be.amax(np.ones(3))
    with pytest.raises(ValueError, match="already registered"):
        backends.register("tiny", _Tiny)
    with pytest.raises(ValueError, match="already registered"):
        backends.register("reference", _Tiny)
    backends.unregister("tiny")
    assert "tiny" not in backends.names()
    with pytest.raises(ValueError, match="was not registered"):
        backends.unregister("reference")


def test_register_factory_instance_and_string() -> None:
    backends.register("tiny", lambda: _Tiny())
    assert isinstance(backends.get("tiny"), _Tiny)
    backends.register("tiny", _Tiny(), replace=True)
    assert isinstance(backends.get("tiny"), _Tiny)
    backends.register("tiny", f"{__name__}:_Tiny", replace=True)
    assert isinstance(backends.get("tiny"), _Tiny)
    with pytest.raises(TypeError, match="factory"):
        backends.register("tiny2", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        backends.register("", _Tiny)


def test_name_mismatch_and_wrong_type_are_reported() -> None:
    backends.register("other", _Tiny)
    with pytest.raises(backends.BackendUnavailable, match="named 'tiny'"):
        backends.get("other")
    backends.register("notabackend", lambda: object())
    with pytest.raises(backends.BackendUnavailable, match="not an fp8ref.backends.Backend"):
        backends.get("notabackend")
    infos = {i.name: i for i in backends.describe()}
    assert not infos["other"].available and "named 'tiny'" in infos["other"].reason


def test_entry_point_discovery_of_the_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eps = _example_entry_points()
    assert eps == {"example-table": "fp8ref_example_backend:TableBackend"}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None
    if tomllib is not None:  # the example's pyproject.toml is valid TOML with that table
        meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
        assert meta["project"]["entry-points"]["fp8ref.backends"] == eps
        assert meta["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]
    _dist_info(tmp_path, "fp8ref-example-backend", eps)
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    backends.reset()
    assert "example-table" in backends.names()
    info = {i.name: i for i in backends.describe()}["example-table"]
    assert info.available, info.reason
    assert info.origin == "entry point fp8ref_example_backend:TableBackend (fp8ref-example-backend)"
    be = backends.get("example-table")
    assert be.capabilities.ops == ("quantize", "dequantize", "amax")
    with pytest.raises(backends.Unsupported):
        be.scaled_mm(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), a_format="E4M3", b_format="E4M3")


def test_broken_and_shadowing_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "fp8ref_bad_backend.py"
    pkg.write_text(textwrap.dedent("""
        def boom():
            raise RuntimeError("driver not found")
    """))
    _dist_info(tmp_path, "fp8ref-bad", {
        "missing-module": "fp8ref_no_such_module:Backend",
        "raises": "fp8ref_bad_backend:boom",
        "reference": "fp8ref_bad_backend:boom",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    backends.reset()
    infos = {i.name: i for i in backends.describe()}
    assert not infos["missing-module"].available
    assert "fp8ref_no_such_module" in infos["missing-module"].reason
    assert not infos["raises"].available
    assert "RuntimeError: driver not found" in infos["raises"].reason
    assert infos["reference"].origin == "builtin" and infos["reference"].available
    assert any("shadowed" in s and s.startswith("reference") for s in registry.shadowed())


def test_capabilities_validation_and_json() -> None:
    with pytest.raises(ValueError, match="ops"):
        backends.Capabilities(ops=("matmul",))
    with pytest.raises(ValueError, match="granularities"):
        backends.Capabilities(granularities=(("row", "row"),))
    caps = backends.get("reference").capabilities
    d = caps.to_dict()
    assert d["granularities"][0] == ["tensor", "tensor"]
    assert d["accumulation"] == "exact" and d["accumulation_selectable"] is True
    import json

    json.dumps(d)


def test_scale_granularity_names() -> None:
    g = backends.scale_granularity
    assert g(1.0, 4, 8, "a") == "tensor"
    assert g(np.ones((4, 1), np.float32), 4, 8, "a") == "row"
    assert g(np.ones((1, 8), np.float32), 4, 8, "b") == "column"
    assert g(np.ones((4, 2), np.float32), 4, 256, "a") == "block-1x128"
    with pytest.raises(ValueError):
        g(np.ones((3, 3), np.float32), 4, 8, "a")
    with pytest.raises(ValueError, match="operand"):
        g(1.0, 4, 8, "c")


def test_import_is_light() -> None:
    """Importing the backends package, listing names and resolving the reference import neither torch nor
    numba; only running an operation does."""
    import subprocess

    code = ("import sys, fp8ref.backends as b; b.names(); "
            "print('torch' in sys.modules, 'numba' in sys.modules, 'ml_dtypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_capabilities_accumulation_must_name_a_model() -> None:
    """``accumulation`` is a hypothesis the harness tests with the reference's model of that name: a name
    the reference does not know is refused at construction, naming the field and the valid names."""
    from fp8ref.accum import PRESETS

    with pytest.raises(ValueError, match=r"accumulation: unknown accumulation model 'no-such-model'.*h100"):
        backends.Capabilities(accumulation="no-such-model")
    with pytest.raises(TypeError, match="accumulation: must be a model name"):
        backends.Capabilities(accumulation=3)  # type: ignore[arg-type]
    for name in PRESETS:
        assert backends.Capabilities(accumulation=name).accumulation == name
    # the reference's spelling rules (case, surrounding blanks) apply; the canonical name is stored
    assert backends.Capabilities(accumulation=" H100-FP8 ").accumulation == "h100-fp8"
    assert backends.Capabilities().accumulation is None
