"""NVFP4 quantisation of 2**24 float32 values against a plain ``fp8ref.quantize`` to E4M3 and against
torchao's CPU ``nvfp4_quantize``, every side on the same number of threads, in one run.

Targets (issue 13): NVFP4 (TE profile, 1x16, two level) at most 2.5x the plain quantize, and at least 5x
faster than torchao's ``nvfp4_quantize`` (two level, its per-tensor scale from the amax included).
Usage::

    python benchmarks/bench_nvfp4.py [--log2n 24] [--repeat 7] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import warnings

import numba
import numpy as np
from bench_scaling import _best_ms

import fp8ref
from fp8ref import E2M1, E4M3, NVFP4, DeepGEMM, quantize_scaled


def _torchao_cases(x2: np.ndarray) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale
    except Exception as exc:  # noqa: BLE001 - any import failure: torchao is not usable here
        print(f"(torchao not measured: {exc})")
        return {}
    t = torch.from_numpy(x2)

    def two_level() -> None:
        nvfp4_quantize(t, 16, per_tensor_amax_to_scale(torch.max(torch.abs(t))))

    return {"torchao nvfp4_quantize (2-level)": two_level,
            "torchao nvfp4_quantize (1-level)": lambda: nvfp4_quantize(t, 16, None)}


def _set_threads(n: int) -> None:
    numba.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    n = 1 << args.log2n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-4, 4, n))).astype(np.float32)
    x2 = x.reshape(-1, 4096)
    cases = {
        "fp8ref.quantize E4M3 (plain)": lambda: fp8ref.quantize(x, E4M3),
        "NVFP4 te 1x16 2-level": lambda: quantize_scaled(x2, E2M1, NVFP4()),
        "NVFP4 te 16x16 2-level": lambda: quantize_scaled(x2, E2M1, NVFP4(tile=(16, 16))),
        "NVFP4 torchao 2-level": lambda: quantize_scaled(x2, E2M1, NVFP4(profile="torchao")),
        "NVFP4 torchao 1-level": lambda: quantize_scaled(x2, E2M1, NVFP4(profile="torchao", two_level=False)),
        "DeepGEMM 1x128 E4M3": lambda: quantize_scaled(x2, E4M3, DeepGEMM()),
        **_torchao_cases(x2),
    }
    for threads in args.threads:
        _set_threads(threads)
        best = _best_ms(cases, args.repeat)
        base = best["fp8ref.quantize E4M3 (plain)"]
        print(f"\nn = 2**{args.log2n} float32, {threads} thread(s); best of {args.repeat} interleaved rounds")
        for name, t in best.items():
            print(f"{name:36s} {t:9.2f} ms   {t / base:6.2f}x plain")
        te = best["NVFP4 te 1x16 2-level"]
        print(f"NVFP4 (te) / plain quantize = {te / base:.2f} (target <= 2.5)")
        for prof, tao in (("te", "2-level"), ("torchao", "2-level"), ("torchao", "1-level")):
            key = f"torchao nvfp4_quantize ({tao})"
            if key in best:
                ours = best[f"NVFP4 {prof} {'1x16 ' if prof == 'te' else ''}{tao}"]
                print(f"torchao {tao} / fp8ref NVFP4 {prof} {tao} = {best[key] / ours:.1f}x (target >= 5)")


if __name__ == "__main__":
    main()
