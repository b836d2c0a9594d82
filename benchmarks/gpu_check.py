"""The prepared GPU check: torch's FP8 casts and ``_scaled_mm`` on a CUDA GPU against the fp8ref reference.

    python benchmarks/gpu_check.py [--out gpu-report.json] [--budget 420] [--dry-run]
    python benchmarks/gpu_check.py --render gpu-report.json > docs/gpu-results.md

One run writes one JSON report with five sections (each timed; a failing section records its error and the
run goes on; a section that would start after ``--budget`` seconds is skipped):

``casts``
    ``torch-cuda`` quantize of every float16 and bfloat16 value, a float32 boundary set and random float32
    sample, and float64 values beside rounding midpoints, for each FP8 format and both saturation modes:
    mismatches against the reference and against the torch rule its measured behaviour names
    (``backend.measured``, docs/backends.md), and against ``torch-cpu``; dequantize of all 256 codes (bits
    of non-NaN values, NaN patterns).
``scaled_mm``
    ``torch._scaled_mm`` with ``use_fast_accum`` off and on, on random E4M3 matrices for several K, against
    every FP8 accumulation preset of fp8ref.accum (plus ``exact`` and ``fp32``): bit-exact fraction and the
    largest ulp distance per model, the best model and whether the claimed one matches.
``probes``
    the published FP8 diagnostic dot products that need no accumulator input, and ``fp8ref.accum.infer`` on
    a 1 x K @ K x 1 ``_scaled_mm``: inferred NFMA, F, output bits, final rounding, promotion interval, the
    preset with those parameters.
``trainer``
    ``compare_trainer`` on ``torch-cuda`` and ``torch-cuda-fastaccum`` for a few steps of the tiny model:
    first step / layer / tensor where the GPU GEMMs part from the reference, and by how many ulps.
``throughput``
    ``_scaled_mm`` (tensor-wise and row-wise, fast accumulation off and on, bfloat16 output) against a
    bfloat16 ``torch.matmul`` of the same shape, in TFLOP/s and as ratios measured in this run.
``block_scaled``
    the block-scaled ``torch._scaled_mm`` paths of torch 2.13 on compute capability 10.0 / 12.0 (torch's
    ``_meta_registrations.py`` / ``ScaledBlas.cpp``: E8M0 scales per 32 elements with FP8 or packed FP4
    ``float4_e2m1fn_x2`` operands = MXFP8 / MXFP4, E4M3 scales per 16 with FP4 = NVFP4 single level; scales in
    cuBLAS's 128x4 swizzled layout): bit-exact fraction against fp8ref's block-scaled presets (``b200-*``,
    ``rtx5090-*``) and ``exact``, per recipe. Other capabilities: skipped with the reason.

``--dry-run`` runs all of it without a GPU: casts through ``torch-cpu`` (the same code path), ``_scaled_mm``
replaced by a simulated device -- the reference with the ``h100-fp8`` / ``h100-fp8-fastaccum`` models behind
the CUDA padding rules; the block-scaled ``_scaled_mm`` by ``b200-*`` on the scales read back from the
swizzled layout -- and throughput measured on the CPU at toy sizes (the numbers mean nothing).
Sized to finish within 8 minutes on an H100/H200, start-up (Numba compilation) included.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "fp8ref-gpu-check"
SCHEMA_VERSION = 1
SECTIONS = ("casts", "scaled_mm", "probes", "trainer", "throughput", "block_scaled")


# ---- devices ----------------------------------------------------------------------------------------------
def simulated_device(name: str, model: str) -> Any:
    """A backend standing in for ``torch-cuda`` in a dry run: ``torch._scaled_mm`` is replaced by the
    reference with the accumulation ``model``, behind the same CUDA padding and refusal rules; casts and
    amax are torch's (the CPU path: CUDA uses the same c10 conversions)."""
    from fp8ref.backends import Capabilities, get
    from fp8ref.backends.reference import ReferenceBackend
    from fp8ref.backends.torch_backend import CUDA_RULES, TorchBackend, prepare_scaled_mm

    torch_cpu = TorchBackend("torch-cpu (CUDA rules)", "cpu", rules=replace(CUDA_RULES, device="cpu"))
    reference = get("reference")


    class _Sim(ReferenceBackend):
        def scaled_mm(self, a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *,
                      a_format: Any = "E4M3", b_format: Any = "E4M3", bias: Any = None,
                      out_dtype: Any = np.float32, scale_result: Any = None, accumulate: Any = None,
                      strict_torch: bool = False) -> Any:
            self.check_accumulate(accumulate)
            p = prepare_scaled_mm(torch_cpu, a, b, scale_a, scale_b, a_format=a_format, b_format=b_format,
                                  bias=bias, out_dtype=out_dtype, scale_result=scale_result,
                                  strict_torch=strict_torch)
            codes_a = p.a.view(torch_cpu._t.uint8).numpy()
            codes_b = p.b.contiguous().view(torch_cpu._t.uint8).numpy()
            sa = p.scale_a.numpy()
            sb = p.scale_b.numpy()
            bias_p = None if p.bias is None else p.bias.float().numpy()
            sr = None if p.scale_result is None else float(p.scale_result)
            out = reference.scaled_mm(codes_a, codes_b, sa, sb, a_format=a_format, b_format=b_format,
                                      bias=bias_p, out_dtype=out_dtype, scale_result=sr, accumulate=model)
            return out[: p.m, : p.n]

    sim = _Sim()
    sim.name = name
    sim.capabilities = Capabilities(
        formats=torch_cpu.capabilities.formats, rounding=("nearest_even",), saturate=(False, True),
        ops=("quantize", "dequantize", "amax", "scaled_mm"), mm_formats=CUDA_RULES.mm_formats,
        granularities=CUDA_RULES.granularities, out_dtypes=CUDA_RULES.out_dtypes, accumulation=model,
        device="simulated (reference model behind the CUDA rules)")
    sim.quantize = torch_cpu.quantize  # type: ignore[method-assign]
    sim.dequantize = torch_cpu.dequantize  # type: ignore[method-assign]
    sim.amax = torch_cpu.amax  # type: ignore[method-assign]
    return sim


def devices(dry_run: bool) -> dict[str, Any]:
    """The backends under test: ``cast``, ``mm`` (fast accumulation off), ``mm_fast`` (on), a description."""
    from fp8ref import backends

    if dry_run:
        return {"cast": backends.get("torch-cpu"), "cast_cpu": backends.get("torch-cpu"),
                "mm": simulated_device("simulated-h100", "h100-fp8"),
                "mm_fast": simulated_device("simulated-h100-fastaccum", "h100-fp8-fastaccum"),
                "device": "dry run: no GPU (casts on torch-cpu, _scaled_mm simulated by the reference)"}
    return {"cast": backends.get("torch-cuda"), "cast_cpu": backends.get("torch-cpu"),
            "mm": backends.get("torch-cuda"), "mm_fast": backends.get("torch-cuda-fastaccum"),
            "device": "cuda"}


def environment(dry_run: bool) -> dict[str, Any]:
    import fp8ref

    env: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                           "fp8ref": fp8ref.__version__, "platform": platform.platform(), "dry_run": dry_run}
    try:
        import ml_dtypes
        import numba

        env["numba"], env["ml_dtypes"] = numba.__version__, ml_dtypes.__version__
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
            env["capability"] = list(torch.cuda.get_device_capability())
            env["cuda_compiled_version"] = _cuda_compiled_version(torch)
            env["cudnn"] = torch.backends.cudnn.version()
            env["driver"] = _driver_version()
    except ImportError as exc:
        env["import_error"] = str(exc)
    return env


def _cuda_compiled_version(torch: Any) -> int | None:
    try:
        return int(torch._C._cuda_getCompiledVersion())
    except Exception:  # noqa: BLE001 - informational only
        return None


def _driver_version() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - informational only
        return None


# ---- casts ------------------------------------------------------------------------------------------------
def _torch_rule(be: Any, x: np.ndarray, fmt: str, saturate: bool) -> np.ndarray:
    """The torch cast in terms of the reference, under the rules the backend measured (docs/backends.md)."""
    return be.measured.behaviour(fmt).predict(x, saturate)


def _cast_inputs(rng: np.random.Generator, fmt: str, n_random: int) -> dict[str, np.ndarray]:
    import ml_dtypes

    import fp8ref

    bits16 = np.arange(1 << 16, dtype=np.uint16)
    v = fp8ref.format(fmt).values()
    v = np.unique(np.abs(v[np.isfinite(v)]))
    mids = (v[:-1] + v[1:]) / 2
    f = fp8ref.format(fmt)
    pts = np.concatenate([v, mids, [f.max * 1.03125, f.max * 1.0625, f.max * 2, 1e30, np.inf, np.nan]])
    p32 = pts.astype(np.float32)
    near = np.concatenate([p32, np.nextafter(p32, np.float32(np.inf)), np.nextafter(p32, np.float32(0))])
    boundary = np.concatenate([near, -near]).astype(np.float32)
    rand32 = rng.integers(0, 1 << 32, n_random, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dr = np.concatenate([mids * (1 - 2.0 ** -40), mids * (1 + 2.0 ** -40)])
    return {"float16 (all)": bits16.view(np.float16), "bfloat16 (all)": bits16.view(ml_dtypes.bfloat16),
            "float32 boundaries": boundary, "float32 random": rand32,
            "float64 beside midpoints": np.concatenate([dr, -dr])}


def section_casts(dev: dict[str, Any], quick: bool) -> dict[str, Any]:
    import fp8ref

    be, cpu = dev["cast"], dev["cast_cpu"]
    e4m3_saturates = be.measured.behaviour("E4M3").overflow == "max"
    rng = np.random.default_rng(0)
    rows = []
    for fmt in be.capabilities.formats:
        inputs = _cast_inputs(rng, fmt, 1 << (16 if quick else 22))
        for sat in (False, True):
            for label, x in inputs.items():
                row: dict[str, Any] = {"format": fmt, "saturate": sat, "input": label, "n": int(x.size)}
                try:
                    got = be.quantize(x, fmt, saturate=sat)
                except Exception as exc:  # noqa: BLE001 - recorded
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    rows.append(row)
                    continue
                ref = fp8ref.quantize(x, fmt, saturate=sat)
                rule = _torch_rule(be, x, fmt, sat)
                other = cpu.quantize(x, fmt, saturate=sat)
                row["mismatch_vs_reference"] = int(np.count_nonzero(got != ref))
                row["mismatch_vs_torch_rule"] = int(np.count_nonzero(got != rule))
                row["mismatch_vs_torch_cpu"] = int(np.count_nonzero(got != other))
                bad = np.flatnonzero(got != rule)[:5]
                if bad.size:
                    xs = np.asarray(x).reshape(-1)
                    row["examples_vs_rule"] = [{"x": repr(float(xs[i])), "got": int(got.reshape(-1)[i]),
                                                "rule": int(rule.reshape(-1)[i])} for i in bad]
                rows.append(row)
    decode = []
    codes = np.arange(256, dtype=np.uint8)
    for fmt in be.capabilities.formats:
        for dt in ("float32", "float64"):
            got = be.dequantize(codes, fmt, dtype=dt)
            ref = fp8ref.dequantize(codes, fmt, dtype=dt)
            nan = np.isnan(ref)
            u = f"u{got.itemsize}"
            off = int(np.count_nonzero(got[~nan].view(u) != ref[~nan].view(u)))
            decode.append({"format": fmt, "dtype": dt, "non_nan_bit_mismatches": off,
                           "nan_positions_match": bool(np.array_equal(np.isnan(got), nan)),
                           "nan_patterns": sorted({hex(int(b)) for b in got[nan].view(u)})})
    total_rule = sum(r.get("mismatch_vs_torch_rule", 0) for r in rows)
    errors = [r for r in rows if "error" in r]
    return {"e4m3_saturates_by_itself": e4m3_saturates, "measured": list(be.measured.summary()),
            "rows": rows, "dequantize": decode,
            "bit_exact_vs_documented_rule": total_rule == 0 and not errors,
            "summary": f"{len(rows)} cast sets, {total_rule} element(s) off the measured torch rule, "
                       f"{len(errors)} error(s)"}


# ---- scaled_mm against the accumulation models ------------------------------------------------------------
def _ulps32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def _mm_inputs(rng: np.random.Generator, m: int, k: int, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    import fp8ref

    if kind == "normal":
        a = rng.standard_normal((m, k))
        b = rng.standard_normal((k, n))
    else:  # "dominant": one large product per dot, many small ones (exposes alignment and promotion)
        a = rng.standard_normal((m, k)) * 2.0 ** -7
        b = rng.standard_normal((k, n)) * 2.0 ** -7
        a[:, 0] = rng.choice([-4.0, 4.0], m)
        b[0, :] = rng.choice([-4.0, 4.0], n)
    return fp8ref.quantize(a, "E4M3"), fp8ref.quantize(b, "E4M3")


def candidate_models() -> list[str]:
    from fp8ref.accum import PRESETS, BlockScaled

    # block-scaled presets need block scales (section block_scaled); these cases are tensorwise
    # mi300x-fp8 takes FNUZ operands (AMD), not these E4M3 ones
    return ["exact", "fp32", *[p for p in PRESETS if "fp8" in p and not isinstance(PRESETS[p], BlockScaled)
                               and PRESETS[p].in_format.name == "E4M3"]]


def section_scaled_mm(dev: dict[str, Any], quick: bool) -> dict[str, Any]:
    from fp8ref import backends

    ref = backends.get("reference")
    rng = np.random.default_rng(1)
    ks = (32, 256) if quick else (32, 128, 256, 1024, 4096)
    m = n = 16 if quick else 32
    cases = [(k, kind) for k in ks for kind in ("normal", "dominant")]
    data = {c: _mm_inputs(rng, m, c[0], n, c[1]) for c in cases}
    models = candidate_models()
    refs = {(c, mdl): ref.scaled_mm(*data[c], accumulate=mdl) for c in cases for mdl in models}
    out: dict[str, Any] = {"shape_mn": [m, n], "k": list(ks), "models": models, "variants": {}}
    for label, be in (("use_fast_accum=False", dev["mm"]), ("use_fast_accum=True", dev["mm_fast"])):
        got = {c: be.scaled_mm(*data[c]) for c in cases}
        per_model = {}
        for mdl in models:
            exact = [float(np.mean(got[c] == refs[(c, mdl)])) for c in cases]
            worst = [int(_ulps32(got[c], refs[(c, mdl)]).max()) for c in cases]
            per_model[mdl] = {"bit_exact_fraction": float(np.mean(exact)), "max_ulps": max(worst),
                              "per_case": [{"k": c[0], "inputs": c[1], "bit_exact": e, "max_ulps": w}
                                           for c, e, w in zip(cases, exact, worst, strict=True)]}
        best = max(models, key=lambda mdl: (per_model[mdl]["bit_exact_fraction"],
                                            -per_model[mdl]["max_ulps"]))
        claim = be.capabilities.accumulation
        out["variants"][label] = {
            "backend": be.name, "claimed": claim, "best_model": best,
            "best_bit_exact_fraction": per_model[best]["bit_exact_fraction"],
            "claim_matches": claim in per_model and per_model[claim]["bit_exact_fraction"] == 1.0,
            "models": per_model}
    return out


# ---- probes -----------------------------------------------------------------------------------------------
def _dot_fn(be: Any) -> Callable[..., float]:
    import fp8ref

    def dot(a: Any, b: Any) -> float:
        a = np.asarray(a, np.float64).reshape(1, -1)
        b = np.asarray(b, np.float64).reshape(-1, 1)
        return float(be.scaled_mm(fp8ref.quantize(a, "E4M3"), fp8ref.quantize(b, "E4M3"))[0, 0])

    return dot


def _matching_presets(inf: Any) -> list[str]:
    from fp8ref.accum import PRESETS, BlockFMA, Promoted

    names = []
    for name, mdl in PRESETS.items():
        inner, every = (mdl.inner, mdl.every) if isinstance(mdl, Promoted) else (mdl, None)
        if not isinstance(inner, BlockFMA) or inner.in_format.name != "E4M3":
            continue
        same = (inf.nfma in (None, inner.nfma) and inf.nfma_min <= inner.nfma
                and (inf.frac_bits is None or inf.frac_bits == inner.frac_bits)
                and inf.out_frac_bits == inner.out_frac_bits and inf.rounding in (None, inner.rounding)
                and inf.promotion == every)
        if same:
            names.append(name)
    return names


def section_probes(dev: dict[str, Any], quick: bool) -> dict[str, Any]:
    from fp8ref.accum import infer
    from fp8ref.accum.probes import PROBES

    out: dict[str, Any] = {"variants": {}}
    for label, be in (("use_fast_accum=False", dev["mm"]), ("use_fast_accum=True", dev["mm_fast"])):
        dot = _dot_fn(be)
        published = []
        for p in PROBES:
            if p.in_format.upper() != "E4M3" or p.c != 0.0 or p.out_format.lower() != "fp32":
                continue
            a, b = p.vectors()
            got = dot(a, b)
            published.append({"id": p.id, "decides": p.decides, "got": got, "expected": p.expected})
        res: dict[str, Any] = {"backend": be.name, "published": published}
        try:
            inf = infer(dot, "E4M3", "FP32", accepts_c=False, max_k=64 if quick else 256,
                        promotion_k=512 if quick else 1024, validate=50 if quick else 200)
        except Exception as exc:  # noqa: BLE001 - recorded
            res["inference_error"] = f"{type(exc).__name__}: {exc}"
        else:
            res["inferred"] = {"nfma": inf.nfma, "nfma_min": inf.nfma_min, "frac_bits": inf.frac_bits,
                               "frac_bits_min": inf.frac_bits_min, "out_frac_bits": inf.out_frac_bits,
                               "rounding": inf.rounding, "promotion": inf.promotion,
                               "promotion_tested_k": inf.promotion_tested_k, "validated": inf.validated,
                               "mismatched": inf.mismatched, "notes": list(inf.notes)}
            res["matching_presets"] = _matching_presets(inf)
            res["summary"] = inf.summary()
        out["variants"][label] = res
    return out


# ---- trainer ----------------------------------------------------------------------------------------------
def section_trainer(dev: dict[str, Any], quick: bool) -> dict[str, Any]:
    from fp8ref.conform.trainer import compare_trainer

    steps = 1 if quick else 3
    small = dict(batch_size=4, block_size=16) if quick else {}
    out = {}
    for label, be in (("use_fast_accum=False", dev["mm"]), ("use_fast_accum=True", dev["mm_fast"])):
        r = compare_trainer(be, steps=steps, isolate=False, **small)  # fp8ref's own or torch: in this process
        r.pop("config", None)
        out[label] = r
    return out


# ---- throughput -------------------------------------------------------------------------------------------
def _timer(dry_run: bool) -> Callable[[Callable[[], Any], int], float]:
    import torch

    def cuda_time(fn: Callable[[], Any], reps: int) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return float(np.median(times))

    def cpu_time(fn: Callable[[], Any], reps: int) -> float:
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    return cpu_time if dry_run else cuda_time


def section_throughput(dev: dict[str, Any], quick: bool, dry_run: bool) -> dict[str, Any]:
    import torch

    device = "cpu" if dry_run else "cuda"
    sizes = [(64, 64, 64)] if dry_run else ([(4096, 4096, 4096)] if quick else [(4096, 4096, 4096),
                                                                              (8192, 8192, 8192)])
    reps = 3 if dry_run else 20
    timeit = _timer(dry_run)
    rows = []
    for m, k, n in sizes:
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(m, k, device=device, generator=gen)
        w = torch.randn(n, k, device=device, generator=gen)
        a8 = x.to(torch.float8_e4m3fn)
        b8 = w.to(torch.float8_e4m3fn).t()  # column-major (K, N)
        xb, wb = x.to(torch.bfloat16), w.to(torch.bfloat16).t()
        one = torch.tensor(1.0, device=device)
        ra, rb = torch.ones(m, 1, device=device), torch.ones(1, n, device=device)
        flop = 2.0 * m * n * k
        t_bf16 = timeit(lambda xb=xb, wb=wb: torch.matmul(xb, wb), reps)
        row: dict[str, Any] = {"m": m, "k": k, "n": n, "bf16_matmul_tflops": flop / t_bf16 / 1e12}
        for scaling, (sa, sb) in (("tensorwise", (one, one)), ("rowwise", (ra, rb))):
            for fast in (False, True):
                key = f"fp8_{scaling}_{'fastaccum' if fast else 'promoted'}"
                try:
                    t = timeit(lambda a8=a8, b8=b8, sa=sa, sb=sb, fast=fast: torch._scaled_mm(
                        a8, b8, sa, sb, out_dtype=torch.bfloat16, use_fast_accum=fast), reps)
                except RuntimeError as exc:
                    row[key + "_error"] = str(exc).splitlines()[0]
                    continue
                row[key + "_tflops"] = flop / t / 1e12
                row[key + "_vs_bf16"] = t_bf16 / t
        rows.append(row)
    return {"device": device, "rows": rows,
            "note": "dry run: CPU toy sizes, the numbers mean nothing" if dry_run else "CUDA events, median"}


# ---- driver -----------------------------------------------------------------------------------------------
# ---- block-scaled _scaled_mm (cc 10.0 / 12.0) ------------------------------------------------------------
BLOCK_RECIPES = (("mxfp8", "E4M3", 32, "E8M0"), ("mxfp4", "E2M1", 32, "E8M0"), ("nvfp4", "E2M1", 16, "E4M3"))


def swizzle_128x4(s: np.ndarray) -> np.ndarray:
    """cuBLAS's block-scale layout (NVIDIA cuBLAS docs "1D block scaling factors layout"; torchao
    ``to_blocked``): the (rows, cols) scales padded to (128 r, 4 c), each 128x4 tile stored as 32 x 16 with
    tile row ``i`` at (``i % 32``, ``(i // 32) * 4 + col``); tiles in row-major order; flattened."""
    rows, cols = s.shape
    r, c = -(-rows // 128), -(-cols // 4)
    p = np.zeros((r * 128, c * 4), dtype=s.dtype)
    p[:rows, :cols] = s
    tiles = p.reshape(r, 128, c, 4).transpose(0, 2, 1, 3).reshape(r * c, 4, 32, 4)
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3)).reshape(-1)


def unswizzle_128x4(flat: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The inverse of :func:`swizzle_128x4`."""
    r, c = -(-rows // 128), -(-cols // 4)
    tiles = flat.reshape(r * c, 32, 4, 4).transpose(0, 2, 1, 3).reshape(r, c, 128, 4)
    return tiles.transpose(0, 2, 1, 3).reshape(r * 128, c * 4)[:rows, :cols]


def _block_inputs(rng: np.random.Generator, fmt: str, m: int, k: int, n: int, block: int, sfmt: str
                  ) -> tuple[np.ndarray, ...]:
    """Element codes of a (M, K) and b (K, N) and scale codes (M, K/block), (N, K/block)."""
    top = 16 if fmt == "E2M1" else 0x7E
    a = rng.integers(0, top, (m, k)).astype(np.uint8)
    b = rng.integers(0, top, (k, n)).astype(np.uint8)
    b[b == 0x7F] = 0  # no NaN codes
    lo, hi = (120, 135) if sfmt == "E8M0" else (0x28, 0x48)
    sa = rng.integers(lo, hi, (m, k // block)).astype(np.uint8)
    sb = rng.integers(lo, hi, (n, k // block)).astype(np.uint8)
    return a, b, sa, sb


def _pack_fp4(codes: np.ndarray) -> np.ndarray:
    """E2M1 codes (rows, K) packed two per byte along K: element 2i in the low nibble."""
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


def _torch_block_scaled(a, b, sa, sb, fmt: str, sfmt: str) -> np.ndarray:
    """``torch._scaled_mm`` on CUDA of block-scaled operands (b is passed column-major, as torch requires)."""
    import torch

    dt = torch.float4_e2m1fn_x2 if fmt == "E2M1" else torch.float8_e4m3fn
    sdt = torch.float8_e8m0fnu if sfmt == "E8M0" else torch.float8_e4m3fn
    if fmt == "E2M1":
        a, bt = _pack_fp4(a), _pack_fp4(np.ascontiguousarray(b.T))
    else:
        bt = np.ascontiguousarray(b.T)
    ta = torch.from_numpy(np.ascontiguousarray(a)).view(dt).cuda()
    tb = torch.from_numpy(bt).view(dt).cuda().t()
    tsa = torch.from_numpy(swizzle_128x4(sa)).view(sdt).cuda()
    tsb = torch.from_numpy(swizzle_128x4(sb)).view(sdt).cuda()
    return torch._scaled_mm(ta, tb, tsa, tsb, out_dtype=torch.float32).cpu().numpy()


def _simulated_block_scaled(a, b, sa, sb, fmt: str, sfmt: str) -> np.ndarray:
    """The dry run's device: ``b200-*`` on the scales read back from the swizzled layout."""
    import fp8ref
    from fp8ref import accum

    m, n = a.shape[0], b.shape[1]
    sa2 = unswizzle_128x4(swizzle_128x4(sa), *sa.shape)
    sb2 = unswizzle_128x4(swizzle_128x4(sb), *sb.shape)
    name = {"E4M3": "b200-mxfp8"}.get(fmt) or ("b200-mxfp4" if sfmt == "E8M0" else "b200-nvfp4")
    model = accum.get(name)
    A = fp8ref.dequantize(a, fmt, dtype=np.float64)
    B = fp8ref.dequantize(b, fmt, dtype=np.float64)
    S_a = fp8ref.dequantize(sa2, sfmt, dtype=np.float64)
    S_b = fp8ref.dequantize(sb2, sfmt, dtype=np.float64).T
    return model.gemm(A, B, scale_a=S_a, scale_b=S_b).astype(np.float32).reshape(m, n)


def section_block_scaled(dev: dict[str, Any], quick: bool, dry_run: bool) -> dict[str, Any]:
    import fp8ref
    from fp8ref import accum
    from fp8ref.scaling import ScaledTensor

    cap = dev.get("capability")
    if not dry_run:
        import torch

        cap = tuple(torch.cuda.get_device_capability())
        if cap not in ((10, 0), (12, 0)):
            return {"skipped": f"block-scaled _scaled_mm needs compute capability 10.0 or 12.0, got {cap}"}
    prefix = "rtx5090" if cap == (12, 0) else "b200"
    device = _simulated_block_scaled if dry_run else _torch_block_scaled
    rng = np.random.default_rng(13)
    shapes = [(128, 256, 128)] if quick else [(128, 256, 128), (256, 1024, 256), (128, 4096, 128)]
    rows = []
    for recipe, fmt, block, sfmt in BLOCK_RECIPES:
        for m, k, n in shapes:
            row: dict[str, Any] = {"recipe": recipe, "m": m, "k": k, "n": n, "models": {}}
            a, b, sa, sb = _block_inputs(rng, fmt, m, k, n, block, sfmt)
            try:
                got = np.asarray(device(a, b, sa, sb, fmt, sfmt), dtype=np.float32)
            except Exception as exc:  # noqa: BLE001 - a refused path is a finding
                row["error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                continue
            gran = "mx" if sfmt == "E8M0" else "block"
            sa_v = fp8ref.dequantize(sa, sfmt, dtype=np.float32)
            sb_v = fp8ref.dequantize(sb, sfmt, dtype=np.float32).T
            sta = ScaledTensor(a, fp8ref.format(fmt), sa_v, block=(1, block), granularity=gran,
                               scale_codes=sa)
            stb = ScaledTensor(b, fp8ref.format(fmt), sb_v, block=(block, 1), granularity=gran,
                               scale_codes=np.ascontiguousarray(sb.T))
            for name in (f"b200-{recipe}", f"rtx5090-{recipe}", "exact"):
                try:
                    ref = fp8ref.scaled_mm(sta, stb, accumulate=accum.get(name) if name != "exact" else name)
                except ValueError as exc:
                    row["models"][name] = {"error": str(exc)}
                    continue
                d = _ulps32(ref, got)
                row["models"][name] = {"bit_exact_fraction": float(np.mean(d == 0)),
                                       "max_ulps": float(d.max())}
            row["best_model"] = max((k2 for k2 in row["models"] if "bit_exact_fraction" in row["models"][k2]),
                                    key=lambda k2: row["models"][k2]["bit_exact_fraction"])
            row["claimed"] = f"{prefix}-{recipe}"
            rows.append(row)
    return {"capability": list(cap) if cap else None, "rows": rows}


def run(out: Path, *, dry_run: bool, budget: float, quick: bool, sections: tuple[str, ...] = SECTIONS
        ) -> dict[str, Any]:
    t0 = time.perf_counter()
    report: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "command": " ".join(sys.argv), "dry_run": dry_run, "quick": quick,
                              "environment": environment(dry_run), "sections": {}, "timings_s": {},
                              "errors": []}
    dev = devices(dry_run)
    report["device"] = dev["device"]
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "casts": lambda: section_casts(dev, quick),
        "scaled_mm": lambda: section_scaled_mm(dev, quick),
        "probes": lambda: section_probes(dev, quick),
        "trainer": lambda: section_trainer(dev, quick),
        "throughput": lambda: section_throughput(dev, quick, dry_run),
        "block_scaled": lambda: section_block_scaled(dev, quick, dry_run),
    }
    for name in sections:
        elapsed = time.perf_counter() - t0
        if elapsed > budget:
            report["sections"][name] = {"skipped": f"time budget of {budget:.0f} s spent ({elapsed:.0f} s)"}
            continue
        t = time.perf_counter()
        try:
            report["sections"][name] = runners[name]()
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            report["errors"].append({"section": name, "traceback": traceback.format_exc()})
        report["timings_s"][name] = round(time.perf_counter() - t, 3)
        _write(out, report)
        print(f"[gpu_check] {name}: {report['timings_s'][name]:.1f} s", file=sys.stderr)
    report["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    _write(out, report)
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def render_markdown(report: dict[str, Any]) -> str:
    """docs/gpu-results.md from a report: environment, per-section findings, timings."""
    env = report["environment"]
    gpu = env.get("gpu", "no GPU")
    lines = [f"# GPU results: {gpu}", "",
             f"Run {report['date']} with `{report['command']}`"
             + (" (**dry run**: no GPU; simulated device)" if report["dry_run"] else "") + ".", "",
             "| item | value |", "|---|---|"]
    for key in ("gpu", "capability", "driver", "torch", "torch_cuda", "cuda_compiled_version", "numpy",
                "numba", "ml_dtypes", "fp8ref", "python"):
        if key in env:
            lines.append(f"| {key} | {env[key]} |")
    s = report["sections"]
    lines += ["", "## Casts", ""]
    c = s.get("casts", {})
    if "rows" in c:
        lines.append(f"{c['summary']}. E4M3 saturates by itself: {c['e4m3_saturates_by_itself']}.")
        lines += ["", "| format | saturate | input | n | vs reference | vs torch rule | vs torch-cpu |",
                  "|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            lines.append(f"| {r['format']} | {r['saturate']} | {r['input']} | {r['n']} | "
                         f"{r.get('mismatch_vs_reference', r.get('error'))} | "
                         f"{r.get('mismatch_vs_torch_rule', '')} | {r.get('mismatch_vs_torch_cpu', '')} |")
    else:
        lines.append(f"`{c}`")
    lines += ["", "## `_scaled_mm` against the accumulation models", ""]
    mm = s.get("scaled_mm", {})
    for label, v in mm.get("variants", {}).items():
        lines.append(f"- {label} ({v['backend']}): best model **{v['best_model']}** "
                     f"({v['best_bit_exact_fraction']:.4f} bit-exact); claimed {v['claimed']!r} matches: "
                     f"{v['claim_matches']}")
    lines += ["", "## Probes", ""]
    for label, v in s.get("probes", {}).get("variants", {}).items():
        inf = v.get("inferred")
        lines.append(f"- {label}: " + (f"NFMA {inf['nfma']}, F {inf['frac_bits']}, out bits "
                                       f"{inf['out_frac_bits']}, rounding {inf['rounding']}, promotion "
                                       f"{inf['promotion']} -> presets {v['matching_presets']}" if inf else
                                       v.get("inference_error", "")))
    lines += ["", "## Trainer", ""]
    for label, r in s.get("trainer", {}).items():
        if not isinstance(r, dict) or "first_divergence" not in r:
            continue
        fd = r["first_divergence"]
        lines.append(f"- {label}: {r['steps_run']} step(s), "
                     + ("identical to the reference" if fd is None else
                        f"first divergence step {fd['step']} {fd['phase']} {fd['layer']} {fd['tensor']}, "
                        f"{fd['differing']}/{fd['size']} elements, max {fd['max_ulps']} ulp"))
    lines += ["", "## Throughput", ""]
    for r in s.get("throughput", {}).get("rows", []):
        lines.append(f"- {r['m']}x{r['k']}x{r['n']}: bf16 {r['bf16_matmul_tflops']:.1f} TFLOP/s; "
                     + ", ".join(f"{k[:-7]} {v:.2f}x" for k, v in r.items() if k.endswith("_vs_bf16")))
    lines += ["", "## Block-scaled `_scaled_mm`", ""]
    for r in s.get("block_scaled", {}).get("rows", []):
        lines.append(f"- {r['recipe']} {r['m']}x{r['k']}x{r['n']}: " + (r["error"] if "error" in r else
                     f"best **{r['best_model']}**; " + ", ".join(
                         f"{k} {v['bit_exact_fraction']:.4f}" for k, v in r["models"].items()
                         if "bit_exact_fraction" in v)))
    failed = {name: sec for name, sec in s.items()
              if isinstance(sec, dict) and ("error" in sec or "skipped" in sec)}
    if failed:
        lines += ["", "## Sections that did not complete", ""]
        lines += [f"- {name}: {sec.get('error') or sec.get('skipped')}" for name, sec in failed.items()]
    lines += ["", "## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu-report.json"), help="the JSON report to write")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: simulate the CUDA calls (see the docstring)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds after which sections not yet started are skipped (default 420)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes everywhere (implied by --dry-run)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    ap.add_argument("--render", type=Path, metavar="REPORT", help="print docs/gpu-results.md for a report")
    args = ap.parse_args(argv)
    if args.render is not None:
        print(render_markdown(json.loads(args.render.read_text())))
        return 0
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"--sections: unknown {bad}; valid: {list(SECTIONS)}")
    if not args.dry_run:
        from fp8ref.backends.torch_backend import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is not None:
            print(f"gpu_check: no usable GPU ({reason}); use --dry-run", file=sys.stderr)
            return 2
    report = run(args.out, dry_run=args.dry_run, budget=args.budget, quick=args.quick or args.dry_run,
                 sections=sections)
    print(f"[gpu_check] wrote {args.out} in {report['timings_s']['total']:.1f} s "
          f"({len(report['errors'])} section error(s))", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
