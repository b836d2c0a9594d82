"""``scaled_mm``: the FP8 scaled matrix product with ``torch._scaled_mm`` semantics (docs/matmul.md)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fp8ref.formats import E4M3, FP32, FP64
from fp8ref.matmul import exact
from fp8ref.matmul import inputs as inp
from fp8ref.matmul.exact import MANTISSA, decode, exact_terms, profile
from fp8ref.matmul.rounding import format_params, round_values

_FP64_PARAMS = format_params(FP64)
_MAX_CHUNKS = 16  # K chunks of the power-of-two tensorwise path (more: the plan's pieces)
_PARALLEL = 1 << 20  # elements from which a Numba kernel runs on every thread (below: no parallel region)


def scaled_mm(a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *, a_format: Any = E4M3,
              b_format: Any = E4M3, bias: Any = None, out_dtype: Any = np.float32, scale_result: Any = None,
              accumulate: Any = "exact", strict_torch: bool = False) -> np.ndarray:
    """``out = round_out((sum_k a[i,k]*sa(i,k) * b[k,j]*sb(k,j) + bias[j]) / scale_result)``.

    ``a`` (M, K) and ``b`` (K, N): uint8 codes of ``a_format`` / ``b_format``, ml_dtypes FP8 arrays (format
    from the dtype) or ScaledTensors (format and scales from them; ``scale_a`` / ``scale_b`` then stay at
    their default). ``scale_a`` / ``scale_b``: float32 dequantisation multipliers, tensorwise (scalar),
    rowwise ((M, 1) / (1, N)), 1x128 / 128x128 blocks or 1x32 (MX, E8M0 allowed) blocks along K.
    ``out_dtype``: float32, float16, bfloat16 or an FP8 format (returned as the ml_dtypes FP8 array;
    ``scale_result`` divides before that final cast). ``accumulate``: ``"exact"`` (exact sum, scales, bias
    and quotient, one rounding), or an accumulation model of :mod:`fp8ref.accum` (a name such as ``"fp32"``
    or ``"h100-fp8"``, or a model object) whose accumulator values go through the fp32 epilogue of
    docs/matmul.md. ``strict_torch=True`` enforces torch's restrictions with torch's messages.
    """
    opa = inp.operand(a, a_format, "a", "a_format")
    opb = inp.operand(b, b_format, "b", "b_format")
    m, k = opa.codes.shape
    k2, n = opb.codes.shape
    if k != k2:
        if strict_torch:
            raise ValueError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and {k2}x{n})")
        raise ValueError(f"a and b shapes cannot be multiplied: a is ({m}, {k}), b is ({k2}, {n}); "
                         "a's columns must equal b's rows")
    sa = _scales(opa, scale_a, "scale_a", "a", lambda s: inp.a_scales(s, m, k))
    sb = _scales(opb, scale_b, "scale_b", "b", lambda s: inp.b_scales(s, k, n))
    out = inp.output(out_dtype)
    if strict_torch:
        from fp8ref.matmul.strict import check_torch

        check_torch(opa, opb, scale_a, scale_b, bias, out, scale_result, m, k, n)
    bias_v = inp.bias_values(bias, n)
    sr = _scale_result(scale_result, out, strict_torch)
    if isinstance(accumulate, str) and accumulate == "exact":
        return _exact(opa, opb, sa, sb, bias_v, sr, out, m, k, n)
    from fp8ref.matmul.models import model_mm, resolve_model

    model = resolve_model(accumulate, opa.fmt, opb.fmt)
    return model_mm(model, opa, opb, sa, sb, bias_v, sr, out, m, k, n)


def _scales(op: inp.Operand, s: Any, name: str, opname: str, parse: Any) -> inp.Scales:
    if op.scales is not None:
        if not (np.ndim(s) == 0 and not isinstance(s, (bool, np.bool_)) and float(s) == 1.0):
            raise ValueError(f"{opname} is a ScaledTensor, which carries its own scales: leave {name} at its "
                             "default (1.0)")
        return op.scales
    return parse(s)


def _scale_result(scale_result: Any, out: inp.Output, strict: bool) -> float | None:
    if scale_result is None:
        return None
    arr = np.asarray(scale_result)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise ValueError(f"scale_result must be a float scalar, got {arr.dtype} of shape {arr.shape}")
    if not inp.is_fp8(out.fmt):
        if strict:
            return None  # torch ignores scale_result for high-precision outputs
        raise ValueError(f"scale_result divides the result before an FP8 cast; out_dtype={out.fmt.name} is "
                         "not FP8 (torch ignores it there: pass strict_torch=True for that behaviour)")
    return float(np.float32(arr.reshape(())))


def segments(sa: inp.Scales, sb: inp.Scales, k: int) -> list[int]:
    """K boundaries of the common refinement of the scale blocks along K of ``a`` and ``b``."""
    cuts = {0, k}
    if not sa.is_tensor:
        cuts.update(range(0, k, sa.block[1]))
    if not sb.is_tensor:
        cuts.update(range(0, k, sb.block[0]))
    return sorted(cuts) if k > 0 else [0]


def segment_scales(sa: inp.Scales, sb: inp.Scales, bounds: list[int], m: int, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(M, S) multipliers of a per segment and (S, N) multipliers of b per segment."""
    starts = np.asarray(bounds[:-1], dtype=np.int64)
    if sa.is_tensor:
        ga = np.broadcast_to(sa.grid.reshape(1, 1), (m, starts.size))
    else:
        ga = sa.grid[np.arange(m) // sa.block[0]][:, starts // sa.block[1]]
    if sb.is_tensor:
        gb = np.broadcast_to(sb.grid.reshape(1, 1), (starts.size, n))
    else:
        gb = sb.grid[starts // sb.block[0]][:, np.arange(n) // sb.block[1]]
    return np.ascontiguousarray(ga, dtype=np.float64), np.ascontiguousarray(gb, dtype=np.float64)


def expand_a(sa: inp.Scales, m: int, k: int) -> np.ndarray:
    if sa.is_tensor:
        return np.broadcast_to(sa.grid.reshape(1, 1), (m, k))
    return sa.grid[np.arange(m) // sa.block[0]][:, np.arange(k) // sa.block[1]]


def expand_b(sb: inp.Scales, k: int, n: int) -> np.ndarray:
    if sb.is_tensor:
        return np.broadcast_to(sb.grid.reshape(1, 1), (k, n))
    return sb.grid[np.arange(k) // sb.block[0]][:, np.arange(n) // sb.block[1]]


_ROW_BYTES = 1 << 28  # memory bound of the term stack per row block


def _log_spread(grid: np.ndarray) -> float | None:
    """log2(max / min) of the finite nonzero magnitudes of a scale grid if all are powers of two, else
    None."""
    v = np.abs(grid[np.isfinite(grid) & (grid != 0)])
    if v.size == 0:
        return 0.0
    mant, ex = np.frexp(v)
    if not (mant == 0.5).all():
        return None
    return float(ex.max() - ex.min())


def _foldable(sa: inp.Scales, sb: inp.Scales, pa: Any, pb: Any, k: int) -> bool:
    """Whether ``(A * SA) @ (B * SB)`` in float64 is exact: power-of-two scales (the products with them are
    exact) and the lemma of docs/matmul.md §2.1 with the ratios widened by the scales' spread."""
    la, lb = _log_spread(sa.grid), _log_spread(sb.grid)
    if la is None or lb is None:
        return False
    return pa.log_ratio + la + pb.log_ratio + lb + np.log2(max(k, 1)) <= 53


def _pow2_exponent(c: float) -> int | None:
    """``e`` when ``|c| == 2**e`` (a finite nonzero power of two), else None."""
    if c == 0.0 or not math.isfinite(c):
        return None
    mant, e = math.frexp(abs(c))
    return e - 1 if mant == 0.5 else None


def _tensorwise_pow2(opa: inp.Operand, opb: inp.Operand, ca: float, cb: float, m: int, k: int, n: int
                     ) -> np.ndarray | None:
    """float32 result of a product with power-of-two tensorwise scales, no bias, no ``scale_result``, with
    ``c = ca * cb`` folded into ``a``: one exact dgemm, or exact K-chunk or piece products summed as a
    double-double, rounded to odd, then converted once (docs/matmul.md §2.1, "Power-of-two tensorwise
    scales"); None when that does not apply (NaN/Inf codes, a plan with K chunks, a range beyond the
    bounds), and the general path runs."""
    ea, eb = _pow2_exponent(ca), _pow2_exponent(cb)
    if ea is None or eb is None:
        return None
    c, lc = ca * cb, ea + eb  # a power of two in float32's range squared: exact in float64
    codes_a = np.ascontiguousarray(opa.codes)
    codes_b = np.ascontiguousarray(opb.codes)
    par_a, par_b = codes_a.size >= _PARALLEL, codes_b.size >= _PARALLEL
    dec_b, hist_b, special_b, mag_b, q_b = exact.decode_summary(
        codes_b, opb.fmt, exact.finite_table(opb.fmt), exact.scratch("b", codes_b.shape))
    if special_b:
        return None
    dec_a, hist_a, special_a, mag_a, q_a = exact.decode_summary(
        codes_a, opa.fmt, exact.scaled_table(opa.fmt, c), exact.scratch("a", codes_a.shape))
    if special_a:
        return None
    log_k = math.log2(max(k, 1))
    # exact.log_ratio of the present codes; a * c, every product and partial sum (multiples of
    # 2**(qa + qb + lc), at most K * ma * mb * c) must lie in float64's normal range
    ratio_a = ratio_b = 0.0
    if mag_a > 0.0:
        ma = math.log2(mag_a)
        ratio_a = ma - q_a
        if q_a + lc < -1022 or ma + lc >= 1023:
            return None
    if mag_b > 0.0:
        mb = math.log2(mag_b)
        ratio_b = mb - q_b
        if mag_a > 0.0 and (q_a + q_b + lc < -1022 or ma + mb + log_k + lc >= 1023):
            return None
    room = MANTISSA - ratio_a - ratio_b  # log2 of the longest K range one exact product may span
    if log_k <= room:  # the plan's first test: one product
        terms = [np.matmul(dec_a, dec_b, out=exact.scratch("t", (m, n)))]
        return _round_sum(terms, m, n)
    if room >= 0.0:
        # K chunks of 2**floor(room): each chunk's product is exact, the chunks together cost one dgemm
        kc = 1 << int(room)
        nt = -(-k // kc)
        if nt <= _MAX_CHUNKS and math.log2(nt) + log_k + ratio_a + ratio_b <= 2 * MANTISSA:
            terms = [np.matmul(dec_a[:, lo:lo + kc], dec_b[lo:lo + kc], out=exact.scratch(("t", i), (m, n)))
                     for i, lo in enumerate(range(0, k, kc))]
            return _round_sum(terms, m, n)
    pl = exact.cached_plan(opa.fmt, exact.present_bits(hist_a), opb.fmt, exact.present_bits(hist_b), k)
    nt = pl.n_products
    if pl.k_chunk < k or (nt > 1 and math.log2(nt) + log_k + ratio_a + ratio_b > 2 * MANTISSA):
        return None
    xs = [dec_a] if len(pl.pieces_a) == 1 else \
        [decode(codes_a, opa.fmt, par_a, exact.piece_table(opa.fmt, p, c), exact.scratch(("a", i), (m, k)))[0]
         for i, p in enumerate(pl.pieces_a)]
    ys = [dec_b] if len(pl.pieces_b) == 1 else \
        [decode(codes_b, opb.fmt, par_b, exact.piece_table(opb.fmt, p), exact.scratch(("b", i), (k, n)))[0]
         for i, p in enumerate(pl.pieces_b)]
    # each product exact (the plan's bound)
    terms = [np.matmul(x, y, out=exact.scratch(("t", i), (m, n))) for i, (x, y) in
             enumerate((x, y) for x in xs for y in ys)]
    return _round_sum(terms, m, n)


def _round_sum(terms: list[np.ndarray], m: int, n: int) -> np.ndarray:
    """The exact sum of the float64 ``terms`` (a double-double, proven exact by the caller) rounded once to
    float32."""
    nt = len(terms)
    s = terms[0]
    if nt > 1:
        # the exact sum as a double-double (docs/matmul.md §2.2), then round to odd at 53 bits
        err = np.zeros_like(s)
        for t in terms[1:]:
            s, e = _two_sum(s, t)
            err += e
        s, e = _two_sum(s, err)
        bump = (e != 0.0) & ((s.view(np.int64) & 1) == 0)
        s[bump] = np.nextafter(s[bump], np.copysign(np.inf, e[bump]))
    from fp8ref.matmul._kernels import plus_zero_to_f32

    res = np.empty((m, n), dtype=np.float32)
    # + 0.0: an exact zero is +0 (a sum of -0 products may come out as -0); then the float32 conversion
    # (round to nearest even; beyond float32's range Inf, as the IEEE conversion says)
    plus_zero_to_f32(s, res)
    return res


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum, elementwise: ``s + e == a + b`` exactly, ``s`` the float64 sum."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _exact(opa: inp.Operand, opb: inp.Operand, sa: inp.Scales, sb: inp.Scales, bias: np.ndarray | None,
           sr: float | None, out: inp.Output, m: int, k: int, n: int) -> np.ndarray:
    from fp8ref.matmul._kernels import exact_epilogue, exact_epilogue_serial

    if sa.is_tensor and sb.is_tensor and bias is None and sr is None and out.fmt == FP32:
        res = _tensorwise_pow2(opa, opb, float(sa.grid[0, 0]), float(sb.grid[0, 0]), m, k, n)
        if res is not None:
            return res

    epilogue = exact_epilogue if m * n >= _PARALLEL else exact_epilogue_serial

    bounds = segments(sa, sb, k)
    ga, gb = segment_scales(sa, sb, bounds, m, n)
    codes_a = np.ascontiguousarray(opa.codes)
    codes_b = np.ascontiguousarray(opb.codes)
    # reused work arrays: a fresh one's first touch (a page fault per 4 KiB) costs ten times the decode
    dec_a, hist_a = decode(codes_a, opa.fmt, codes_a.size >= _PARALLEL, None, exact.scratch("a", (m, k)))
    dec_b, hist_b = decode(codes_b, opb.fmt, codes_b.size >= _PARALLEL, None, exact.scratch("b", (k, n)))
    pa, pb = profile(codes_a, opa.fmt, hist_a), profile(codes_b, opb.fmt, hist_b)
    special = (pa.has_special or pb.has_special or not np.isfinite(ga).all() or not np.isfinite(gb).all()
               or (bias is not None and not np.isfinite(bias).all()))
    if special:
        ga = np.where(np.isfinite(ga), ga, 0.0)
        gb = np.where(np.isfinite(gb), gb, 0.0)
    bias_arr = np.zeros(max(n, 1)) if bias is None else np.where(np.isfinite(bias), bias, 0.0)
    plain_sr = sr is not None and np.isfinite(sr) and sr != 0.0
    params = format_params(out.fmt) if sr is None or plain_sr else _FP64_PARAMS
    res_dtype = np.float32 if out.dtype == np.float32 and params is not _FP64_PARAMS else np.float64
    res = np.empty((m, n), dtype=res_dtype)
    nseg = len(bounds) - 1
    if nseg > 1 and _foldable(sa, sb, pa, pb, k):
        # power-of-two block scales (MX, the paper's scaling biases) whose range still satisfies the
        # float64 bound: fold them into the operands (exact) and do one product
        scale_a, scale_b = expand_a(sa, m, k), expand_b(sb, k, n)
        dec_a = dec_a * np.where(np.isfinite(scale_a), scale_a, 0.0)
        dec_b = dec_b * np.where(np.isfinite(scale_b), scale_b, 0.0)
        terms = np.matmul(dec_a, dec_b)[None]
        epilogue(terms, np.zeros(1, np.int64), np.ones((m, 1)), np.ones((1, n)), bias_arr, bias is not None,
                 sr if plain_sr else 1.0, plain_sr, *params, res_dtype == np.float32, False, res)
    else:
        rows = max(1, min(m, _ROW_BYTES // max(1, 8 * n * max(nseg, 1) * 4)))
        for r0 in range(0, m, rows):
            r1 = min(m, r0 + rows)
            terms, seg = exact_terms(codes_a[r0:r1], opa.fmt, codes_b, opb.fmt, bounds, pa, pb,
                                     dec_a[r0:r1], dec_b)
            # one segment: the sum of its terms is a double-double, exactly, when every partial sum and the
            # accumulated TwoSum errors are multiples of the quantum below 2^106 of it (docs/matmul.md §2.2)
            dd = nseg == 1 and np.log2(max(terms.shape[0], 1)) + np.log2(max(k, 1)) + pa.log_ratio \
                + pb.log_ratio <= 2 * 53
            epilogue(terms, seg, ga[r0:r1], gb, bias_arr, bias is not None, sr if plain_sr else 1.0,
                     plain_sr, *params, res_dtype == np.float32, bool(dd), res[r0:r1])
    if sr is not None and not plain_sr:
        with np.errstate(invalid="ignore", divide="ignore"):
            res = round_values(res / sr, out.fmt)
    if special:
        with np.errstate(invalid="ignore", over="ignore"):
            ap = inp.tables(opa.fmt)[0][opa.codes] * expand_a(sa, m, k)
            bp = inp.tables(opb.fmt)[0][opb.codes] * expand_b(sb, k, n)
        from fp8ref.matmul.specials import special_results

        sp = special_results(ap, bp, bias)
        mask = sp != 0
        if mask.any():
            vals = sp[mask]
            if sr is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    vals = vals / sr
            res[mask] = round_values(vals, out.fmt)
    return res.astype(out.dtype, copy=False)
