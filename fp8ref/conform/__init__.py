"""The conformance harness: run a golden set through a backend and say exactly where and how it deviates.

``run(backend, golden_dir, suites=None, tolerance=0)`` returns a :class:`ConformReport` (per suite: cases,
bit-exact matches, ulp histogram of the rest, deviation categories, the worst elements with their inputs;
for matmul, the accumulation model that explains the backend best). ``format_table(report)`` renders it;
``report.to_json()`` is the CI form. The command is ``fp8ref conform`` (docs/conformance.md).
"""

from __future__ import annotations

from fp8ref.conform.harness import CaseResult, ConformReport, SuiteSummary, run
from fp8ref.conform.report import format_table
from fp8ref.conform.score import Element, categorize
from fp8ref.conform.ulps import distance, histogram

__all__ = ["run", "ConformReport", "CaseResult", "SuiteSummary", "Element", "categorize", "format_table",
           "distance", "histogram"]
