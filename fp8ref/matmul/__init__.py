"""The FP8 scaled matrix product ``scaled_mm`` (``torch._scaled_mm`` semantics) on top of fp8ref.accum.

``accumulate="exact"`` computes the exact value of the scaled, biased dot products and rounds it once
(float64 BLAS where a bound proves it exact, an exact split-and-sum otherwise); accumulation models of
:mod:`fp8ref.accum` give the accumulator values that the documented fp32 epilogue turns into the output.
The rules and proofs are in docs/matmul.md; :mod:`fp8ref.matmul.oracle` is the Fraction specification.
"""

from __future__ import annotations

from fp8ref.matmul.api import scaled_mm

__all__ = ["scaled_mm"]
