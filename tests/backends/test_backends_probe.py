"""fp8ref.backends.peer_probe: a peer's behaviour measured against the exact reference.

The probe is tested on the reference itself (it must find nothing), on fake peers with one injected
deviation each (it must find exactly that one, name it, and predict the peer's codes from it), on a peer
that raises, and on the installed ml_dtypes / torch, whose measurement must equal what docs/backends.md
states for that version where the docs state one (other versions are measured and reported, not failed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fp8ref
from fp8ref import backends
from fp8ref.backends import peer_probe
from fp8ref.backends.peer_probe import PeerProbe, probe_format, probe_peer, reference_behaviour
from fp8ref.cast.cases import boundary_values
from fp8ref.formats import FP8_FORMATS, Format

FORMATS = [f.name for f in FP8_FORMATS]


def _ref_quantize(x: np.ndarray, f: Format) -> np.ndarray:
    return fp8ref.quantize(x, f, saturate=False)


def _ref_dequantize(c: np.ndarray, f: Format, dtype) -> np.ndarray:
    return fp8ref.dequantize(c, f, dtype=dtype)


@pytest.mark.parametrize("fmt", FP8_FORMATS, ids=str)
def test_the_reference_measures_as_the_oracle(fmt: Format) -> None:
    """The fast reference measured by the probe reads exactly as the exact oracle does, and both read as
    the reference's rules say, computed here from the format's fields."""
    oracle = reference_behaviour(fmt)
    assert probe_format(fmt, _ref_quantize, _ref_dequantize) == oracle
    assert oracle.float64 == "once" and oracle.float64_example is None
    assert oracle.float64_counts[0] > 100 and oracle.float64_counts[1:] == (0, 0)
    nan = np.array([np.nan, -np.nan], np.float32)
    assert oracle.nan_codes == tuple(fp8ref.quantize(nan, fmt).tolist())
    over = "inf" if fmt.inf_code is not None else "nan"
    assert (oracle.overflow, oracle.infinity) == (over, over)
    assert oracle.decode_mismatches == 0
    codes = np.arange(256, dtype=np.uint8)
    for dt in ("float32", "float64"):
        v = fp8ref.dequantize(codes, fmt, dtype=dt)
        isnan = np.isnan(v)
        bits = v[isnan].view(f"u{v.itemsize}").tolist()
        assert oracle.nan_bits(dt) == dict(zip(codes[isnan].tolist(), bits, strict=True))
    probe = probe_peer("reference", FP8_FORMATS, _ref_quantize, _ref_dequantize)
    assert probe.deviations() == () and probe.error is None


def test_decisive_float64_inputs() -> None:
    """Every decisive input is a float64 neighbour of a midpoint that float32 rounds onto the midpoint."""
    fmt = fp8ref.E4M3
    x, once, via = peer_probe.decisive_float64(fmt)
    assert x.size > 100 and np.all(once != via)
    assert np.array_equal(once, fp8ref.quantize(x, fmt, saturate=False))
    assert np.array_equal(via, fp8ref.quantize(x.astype(np.float32), fmt, saturate=False))
    assert -431.99999999999994 in x  # ml_dtypes PR #401's example


def _fake(via32: str = "", saturates: str = "", nan: str = "", nanbits: str = "", wrong: str = "",
          mixed: str = ""):
    """The reference with one deviation injected in the named format."""

    @np.errstate(over="ignore", invalid="ignore")
    def quantize(x: np.ndarray, f: Format) -> np.ndarray:
        x = np.asarray(x)
        src = x
        if f.name in (via32, mixed) and x.dtype == np.float64:
            src = x.astype(np.float32)
            if f.name == mixed:  # only negative inputs through float32
                src = np.where(x < 0, x.astype(np.float32).astype(np.float64), x)
        c = fp8ref.quantize(src, f, saturate=f.name == saturates)
        if f.name == nan:
            isnan = np.isnan(np.asarray(x, np.float64))
            c = np.where(isnan, (c & 0x80) | 0x7E, c).astype(np.uint8)
        return c

    def dequantize(c: np.ndarray, f: Format, dtype) -> np.ndarray:
        v = fp8ref.dequantize(c, f, dtype=dtype)
        u = v.view(f"u{v.itemsize}")
        if f.name == nanbits:
            pattern = 0x7FF00000 if v.dtype == np.float32 else 0x7FFE000000000000
            u[np.isnan(v)] |= u.dtype.type(pattern)
        if f.name == wrong:
            v[c == 0x01] = 0.0
        return v

    return quantize, dequantize


INJECTED = [
    ("via32", "E5M2FNUZ", {"float64": "via_float32"}, "float64 input to E5M2FNUZ is rounded to float32"),
    ("saturates", "E4M3", {"overflow": "max", "infinity": "max"}, "finite overflow in E4M3 gives +-max"),
    ("nan", "E5M2", {"nan_codes": (0x7E, 0xFE)}, "NaN input to E5M2 is encoded 0x7e / 0xfe"),
    ("nanbits", "E4M3", {}, "NaN codes of E4M3 decode to float32 0x7ff00000, 0xfff00000"),
    ("wrong", "E4M3FNUZ", {"decode_mismatches": 2}, "2 decoded non-NaN (code, dtype) pairs of E4M3FNUZ"),
    ("mixed", "E4M3", {"float64": "mixed"}, "neither rounded once nor through float32"),
]


@pytest.mark.parametrize(("kind", "fmt", "fields", "sentence"), INJECTED, ids=[i[0] for i in INJECTED])
def test_an_injected_deviation_is_found_named_and_predicted(kind: str, fmt: str, fields: dict,
                                                            sentence: str) -> None:
    q, d = _fake(**{kind: fmt})
    probe = probe_peer("fake 1.0", FP8_FORMATS, q, d)
    assert probe.error is None
    for f in FORMATS:
        b, r = probe.behaviour(f), probe.reference_of(f)
        differing = {k for k in ("float64", "nan_codes", "overflow", "infinity", "decode_nan_bits",
                                 "decode_mismatches") if getattr(b, k) != getattr(r, k)}
        if f != fmt:
            assert differing == set(), f
            continue
        assert {k: getattr(b, k) for k in fields} == fields
        assert differing == set(fields) | ({"decode_nan_bits"} if kind == "nanbits" else set())
    devs = probe.deviations()
    assert len(devs) == (2 if kind == "saturates" else 1)  # saturation: finite overflow and +-Inf
    assert devs[0].startswith("fake 1.0: ") and sentence in devs[0]
    assert sum(f"[{fmt}]: " in line and "(reference: " in line for line in probe.summary()) == len(devs)
    json.dumps(probe.to_dict())
    b = probe.behaviour(fmt)
    x = np.concatenate([boundary_values(fp8ref.format(fmt), np.float64),
                        peer_probe.decisive_float64(fp8ref.format(fmt))[0]])
    for dtype in (np.float64, np.float32):
        for saturate in (False, True):
            with np.errstate(over="ignore"):
                xs = x.astype(dtype)
            if kind == "mixed":
                with pytest.raises(ValueError, match="float64 rounding"):
                    b.predict(x, saturate)
                break
            top = fp8ref.format(fmt).max
            want = q(np.clip(xs, -top, top) if saturate else xs, fp8ref.format(fmt))
            np.testing.assert_array_equal(b.predict(xs, saturate), want)
    codes = np.arange(256, dtype=np.uint8)
    for dt in ("float32", "float64"):
        if kind == "wrong":
            with pytest.raises(ValueError, match="non-NaN"):
                b.predict_dequantize(codes, dt)
            continue
        got = d(codes, fp8ref.format(fmt), dt)
        np.testing.assert_array_equal(b.predict_dequantize(codes, dt), got.view(f"u{got.itemsize}"))


def test_example_of_double_rounding_is_pr_401() -> None:
    probe = probe_peer("fake", (fp8ref.E4M3,), *_fake(via32="E4M3"))
    assert probe.behaviour("E4M3").float64_example == (-431.99999999999994, 0xFE)
    assert "-431.99999999999994 -> 0xfe, reference 0xfd" in probe.deviations()[0]


def test_a_peer_that_raises_is_reported_not_raised() -> None:
    def broken(x, f):
        raise RuntimeError("no such kernel")

    probe = probe_peer("broken 0.1", FP8_FORMATS, broken, _ref_dequantize)
    assert probe.error == "RuntimeError: no such kernel"
    assert probe.deviations() == ("broken 0.1: its behaviour could not be measured (RuntimeError: no such "
                                  "kernel)",)
    assert probe.summary() == ("not measured: RuntimeError: no such kernel",)
    assert json.loads(json.dumps(probe.to_dict()))["error"] == "RuntimeError: no such kernel"
    with pytest.raises(KeyError, match="not probed"):
        probe.behaviour("E4M3")


def test_ml_dtypes_backend_with_a_broken_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    from fp8ref.backends import mldtypes

    def broken(x, f):
        raise TypeError("astype refused")

    monkeypatch.setattr(mldtypes, "_astype", broken)
    probe = mldtypes.measured.__wrapped__()
    assert probe.error == "TypeError: astype refused"
    monkeypatch.setattr(mldtypes, "measured", lambda: probe)
    be = mldtypes.MlDtypesBackend()
    assert be.capabilities.deviations == probe.deviations()
    assert "could not be measured" in be.capabilities.deviations[0]


def test_measured_once_per_process() -> None:
    from fp8ref.backends import mldtypes

    first = backends.get("ml_dtypes").measured
    backends.reset()
    assert backends.get("ml_dtypes").measured is first is mldtypes.measured()
    assert isinstance(first, PeerProbe) and [b.format for b in first.formats] == FORMATS


def test_torch_measured_once_per_device() -> None:
    pytest.importorskip("torch")
    from fp8ref.backends.torch_backend import TorchBackend

    cpu, fast = backends.get("torch-cpu").measured, backends.get("torch-cpu-fastaccum").measured
    assert TorchBackend("torch-cpu", "cpu").measured is cpu
    assert fast.formats is cpu.formats  # the casts are probed once; the scaled_mm part per variant
    assert [o.name for o in cpu.observations] == ["scaled_mm scales", "use_fast_accum True vs False"]


# ---- what docs/backends.md states per version ----------------------------------------------------------
def _torch_e5m2_nan(dt: str) -> dict[int, int]:
    """torch 2.13 decodes E5M2 NaN codes keeping the two mantissa bits as payload, quiet bit set."""
    codes = [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]
    if dt == "float32":
        return {c: (0x80000000 if c & 0x80 else 0) | 0x7FC00000 | ((c & 3) << 21) for c in codes}
    return {c: (1 << 63 if c & 0x80 else 0) | 0x7FF8000000000000 | ((c & 3) << 50) for c in codes}


_ALL = tuple(FORMATS)
#: (library, major.minor) -> {(property, format): the peer's value where it differs from the reference}
DOCUMENTED: dict[tuple[str, str], dict[tuple[str, str], object]] = {
    ("ml_dtypes", "0.6"): {**{("float64", f): "via_float32" for f in _ALL},
                           ("nan_codes", "E5M2"): (0x7E, 0xFE)},
    ("ml_dtypes", "0.7"): {("nan_codes", "E5M2"): (0x7E, 0xFE)},
    ("torch", "2.13"): {
        **{("float64", f): "via_float32" for f in _ALL},
        ("overflow", "E4M3"): "max", ("infinity", "E4M3"): "max",
        ("decode_nan_bits", "E4M3"): {"float32": {0x7F: 0x7FF00000, 0xFF: 0xFFF00000},
                                      "float64": {0x7F: 0x7FFE000000000000, 0xFF: 0xFFFE000000000000}},
        ("decode_nan_bits", "E5M2"): {dt: _torch_e5m2_nan(dt) for dt in ("float32", "float64")},
        **{("decode_nan_bits", f): {"float32": {0x80: 0x7F800001}, "float64": {0x80: 0x7FF8000020000000}}
           for f in ("E4M3FNUZ", "E5M2FNUZ")},
        ("observation", "scaled_mm scales"):
            "each operand multiplied by its scale and rounded to float32 before the product",
        ("observation", "use_fast_accum True vs False"): "identical results",
    },
}


def _differences(probe: PeerProbe) -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    for b in probe.formats:
        r = probe.reference_of(b.format)
        for k in ("float64", "nan_codes", "overflow", "infinity", "decode_mismatches"):
            if getattr(b, k) != getattr(r, k):
                out[(k, b.format)] = getattr(b, k)
        if b.decode_nan_bits != r.decode_nan_bits:
            out[("decode_nan_bits", b.format)] = {dt: b.nan_bits(dt) for dt in ("float32", "float64")}
    for o in probe.observations:
        out[("observation", o.name)] = o.measured
    return out


@pytest.mark.parametrize("name", ["ml_dtypes", "torch-cpu"])
def test_documented_versions(name: str) -> None:
    """docs/backends.md and docs/casts.md §9 state the behaviour of ml_dtypes 0.6 and 0.7 and torch 2.13
    (CPU): where the installed version is one of them, the measurement must equal the statement."""
    if name.startswith("torch"):
        pytest.importorskip("torch")
    library = "torch" if name.startswith("torch") else "ml_dtypes"
    version = __import__(library).__version__
    key = (library, ".".join(version.split("+")[0].split(".")[:2]))
    if key not in DOCUMENTED:
        pytest.skip(f"{library} {version} is measured and reported; docs/backends.md does not describe it")
    assert _differences(backends.get(name).measured) == DOCUMENTED[key]
