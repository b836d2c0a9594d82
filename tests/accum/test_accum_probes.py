"""The published diagnostic probes reproduce their expected outputs, and `infer` recovers every model."""

from __future__ import annotations

import math

import pytest

from fp8ref import accum
from fp8ref.accum import probes

from .helpers import all_models

NAMED = {m.name: m for _, m in all_models()}


def _expectations():
    for pr in probes.PROBES:
        for name, value in pr.expected.items():
            yield pytest.param(pr, name, value, id=f"{pr.id}-{name}")


@pytest.mark.parametrize("pr,name,value", list(_expectations()))
def test_published_probe_expectations(pr, name, value):
    model = NAMED[name] if name in NAMED else accum.get(name)
    a, b = pr.vectors()
    got = model.dot(a, b, pr.c)
    assert got == value and math.copysign(1, got) == math.copysign(1, value), (pr.id, name, got, value)


def test_probe_lookup_and_errors():
    assert probes.probe("P7").decides == "massive cancellation"
    with pytest.raises(ValueError, match="unknown probe"):
        probes.probe("nope")


def _unique_targets():
    """Every preset and tensor_core model, one per distinct parameter set. ``infer`` recovers block models
    whose products enter the blocks in natural order; the FP8 -> fp16 mma.sync models (``k_order``, c added
    last) are pinned by the hardware data instead (test_accum_fp8_fp16out.py). ``infer``'s probes need FP8 or
    wider inputs (an f6/f4 format cannot hold their values): the f6/f4 models are pinned by their exact oracle
    (test_accum_fast_vs_exact.py) and their own probes (test_accum_blockscaled.py). The AMD MFMA rules
    (pairwise fp32 trees, CDNA3's round-down sums) are no block FMA: test_accum_amd.py pins them. ``infer``
    reads fp32 / fp16 / bf16 outputs: the fp64 FMA chain of the f64 instructions is pinned by
    test_accum_fp64.py."""
    seen = {}
    for name, m in all_models():
        if (getattr(m, "k_order", None) is not None or m.in_format.bits < 8
                or isinstance(m, accum.Mfma) or m.out_format.bits == 64):
            continue
        key = repr(m.inner if isinstance(m, accum.Promoted) else m) + repr(getattr(m, "every", None))
        key = key.replace(repr(m.name), "")
        seen.setdefault((type(m).__name__, key), (name, m))
    return list(seen.values())


TARGETS = _unique_targets()


@pytest.mark.parametrize("name,model", TARGETS, ids=[n for n, _ in TARGETS])
def test_infer_recovers_model(name, model):
    inf = probes.infer(probes.dot_fn_of(model), model.in_format, model.out_format, max_k=128, promotion_k=512,
                       validate=100)
    assert inf.mismatched == 0 and inf.validated == 100, inf.summary()
    if isinstance(model, (accum.BlockFMA, accum.Promoted)):
        inner = model.inner if isinstance(model, accum.Promoted) else model
        assert inf.nfma == inner.nfma
        assert inf.frac_bits == inner.frac_bits
        assert inf.out_frac_bits == inner.out_frac_bits
        assert inf.rounding == inner.rounding
        assert inner.e_floor in inf.e_floor or (inner.e_floor < probes._FLOOR_LO and None in inf.e_floor)
        assert inf.c_mode == inner.c_mode
        assert inf.promotion == (model.every if isinstance(model, accum.Promoted) else None)
    elif isinstance(model, accum.Sequential):
        assert inf.nfma == 1 and inf.rounding == "rne" and inf.out_frac_bits == model.acc_format.mbits
    else:  # Exact: no block boundary, no alignment loss
        assert inf.nfma is None and inf.frac_bits is None and inf.rounding == "rne"


def test_infer_products_only_and_bad_arguments():
    m = accum.tensor_core("H100", "E4M3")
    inf = probes.infer(lambda a, b: m.dot(a, b), "E4M3", accepts_c=False, max_k=64, promotion_k=256)
    assert (inf.nfma, inf.frac_bits, inf.out_frac_bits, inf.rounding, inf.c_mode) == (32, 13, 13, "rz", None)
    assert "NFMA                32" in inf.summary()
    with pytest.raises(ValueError, match="out_format"):
        probes.infer(probes.dot_fn_of(m), "E4M3", "E4M3")
    with pytest.raises(TypeError, match="callable"):
        probes.infer(3, "E4M3")
    with pytest.raises(ValueError, match="not a block-FMA unit"):
        probes.infer(lambda a, b, c=0.0: 0.0, "E4M3")


def test_infer_floor_discriminators():
    # bf16 inputs reach far enough down to tell the MTC floor (-133) from MMA-Sim's -126
    m = accum.tensor_core("H100", "bf16")
    inf = probes.infer(probes.dot_fn_of(m), "bf16", max_k=64, promotion_k=256, validate=20)
    assert -133 in inf.e_floor and -126 not in inf.e_floor and None not in inf.e_floor
