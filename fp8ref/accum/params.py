"""The parameter records through which a model reaches the kernels and the exact oracle.

A model (:mod:`fp8ref.accum.models`) is a frozen dataclass with formats and names; the Numba kernels read
plain integers. :class:`BlockParams` carries one block-FMA model, with its promotion when it is the inner
model of :class:`~fp8ref.accum.Promoted`; :class:`AccParams` one accumulator format (``Sequential``,
``Exact``). Both are flat NamedTuples of integers and booleans: Numba passes each to a kernel as one
argument (also into parallel loops, which take no nested records), and :mod:`fp8ref.accum.exact` reads the
same fields.
"""

from __future__ import annotations

from typing import NamedTuple

from fp8ref.formats import FP32, Format

NO_FLOOR = -(1 << 30)  # e_floor of a model without a floor (below every exponent)


class AccParams(NamedTuple):
    """An accumulator: ``mbits`` fraction bits, normal exponents ``emin .. emax``, subnormals, IEEE
    specials; every addition into it rounds to nearest even."""

    mbits: int
    emin: int
    emax: int


def acc_params(fmt: Format) -> AccParams:
    return AccParams(fmt.mbits, fmt.emin, fmt.emax)


class BlockParams(NamedTuple):
    """One block-FMA model (docs/accumulation.md §2) and, for ``every > 0``, its promotion (§3).

    ``nfma`` products per block; ``frac_bits`` (F) fraction bits kept below the block exponent, which is
    at least ``e_floor`` (``NO_FLOOR``: no floor); subnormal operands keep the exponents ``emin_a`` /
    ``emin_b``, a subnormal accumulator ``emin_c``; the block sum is rounded toward zero (``rz``) or to
    nearest even to ``out_frac_bits`` fraction bits in the exponent range ``out_emin .. out_emax``.
    ``separate``: c_mode "separate" (the products alone are rounded, then added to c with one RNE addition).
    ``every``: 0 for fast accumulation (the accumulator chains through every block of K), else the promotion
    interval: each group of ``every`` elements starts from 0 and is added to an accumulator of ``acc_mbits``
    fraction bits and exponents ``acc_emin .. acc_emax`` with one RNE addition."""

    nfma: int
    frac_bits: int
    out_frac_bits: int
    rz: bool
    e_floor: int
    emin_a: int
    emin_b: int
    emin_c: int
    out_emin: int
    out_emax: int
    separate: bool
    every: int = 0
    acc_mbits: int = FP32.mbits
    acc_emin: int = FP32.emin
    acc_emax: int = FP32.emax

    @property
    def acc(self) -> AccParams:
        """The promotion's accumulator."""
        return AccParams(self.acc_mbits, self.acc_emin, self.acc_emax)
