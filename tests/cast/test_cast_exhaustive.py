"""All 2**32 float32 bit patterns, nearest-even, E4M3/E5M2/E4M3FNUZ/E5M2FNUZ, both saturation modes:
equal to ml_dtypes (its own conversion, non-saturating in 0.6 and 0.7; saturating derived from it by
sending its overflow results to +-max) and to torch's E4M3 conversion (saturating in torch 2.13), under
the rules the backends measured on the installed versions: the codes of NaN inputs (ml_dtypes 0.6 and 0.7
encode E5M2 NaN as 0x7E|sign where fp8ref and torch give 0x7F|sign) and the overflow of the peer's own
conversion. Slow: about 256 chunks of 2**24 values."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fp8ref
from fp8ref.formats import Format

CHUNK = 1 << 24
OCP = (fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ)


def _ml(x: np.ndarray, fmt: Format) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(fmt.ml_dtype).view(np.uint8)


def _saturated(ml: np.ndarray, bits: np.ndarray, fmt: Format) -> np.ndarray:
    """ml_dtypes' non-saturating codes with each Inf/NaN result of a non-NaN input replaced by +-max."""
    from numba import njit

    global _saturate_loop
    if _saturate_loop is None:
        @njit
        def loop(ml, bits, nonfinite, max_code, out):
            for i in range(ml.size):
                c = ml[i]
                if nonfinite[c] and (bits[i] & 0x7FFFFFFF) <= 0x7F800000:
                    c = max_code | ((bits[i] >> 24) & 0x80)
                out[i] = c

        _saturate_loop = loop
    want = np.empty_like(ml)
    _saturate_loop(ml, bits, ~np.isfinite(fmt.values()), fmt.max_code, want)
    return want


_saturate_loop = None


class Sweep:
    """Buffers reused across chunks."""

    def __init__(self, torch=None) -> None:
        from fp8ref import backends

        self.base = np.arange(CHUNK, dtype=np.uint32)
        self.bits = np.empty(CHUNK, dtype=np.uint32)
        self.ours = np.empty(CHUNK, dtype=np.uint8)
        probe = backends.get("ml_dtypes").measured
        self.ml = {f.name: probe.behaviour(f) for f in OCP}  # what the installed ml_dtypes was measured to do
        self.ref = {f.name: probe.reference_of(f) for f in OCP}
        self.torch_e4m3 = None if torch is None else backends.get("torch-cpu").measured.behaviour("E4M3")

    def check(self, start: int, pool: ThreadPoolExecutor, torch=None) -> None:
        bits = self.bits
        np.add(self.base, np.uint32(start), out=bits)
        x = bits.view(np.float32)
        mls = list(pool.map(lambda f: _ml(x, f), OCP))
        nan = np.isnan(x)
        negative = (bits >> 31).astype(bool)
        for fmt, ml in zip(OCP, mls, strict=True):
            measured, ref = self.ml[fmt.name], self.ref[fmt.name]
            if nan.any():  # NaN inputs: the measured codes; then the reference's, to compare the rest
                want = np.where(negative, measured.nan_codes[1], measured.nan_codes[0])
                assert np.array_equal(ml[nan], want[nan]), (fmt.name, hex(start))
                ml[nan] = np.where(negative, ref.nan_codes[1], ref.nan_codes[0])[nan]
            own = measured.overflow == "max"  # the peer's own conversion saturates (not in 0.6, 0.7)
            assert measured.infinity == ("max" if own else ref.infinity)
            ours = fp8ref.quantize(x, fmt, saturate=own, out=self.ours)
            assert np.array_equal(ours, ml), (fmt.name, hex(start))
            ours = fp8ref.quantize(x, fmt, saturate=True, out=self.ours)
            assert np.array_equal(ours, _saturated(ml, bits, fmt)), (fmt.name, hex(start))
            if fmt is fp8ref.E4M3 and torch is not None:
                t = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
                assert np.array_equal(t, self.torch_e4m3.predict(x, saturate=False)), hex(start)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_all_float32_bit_patterns() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an optional extra
        torch = None
    sweep = Sweep(torch)
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, 1 << 32, CHUNK):
            sweep.check(start, pool, torch)
