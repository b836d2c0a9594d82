"""The PyTorch backends: ``torch-cpu``, ``torch-cpu-fastaccum``, ``torch-cuda``, ``torch-cuda-fastaccum``.

Casts go through torch's float8 dtypes (``tensor.to(torch.float8_e4m3fn)`` ...), ``amax`` through
``torch.amax``, and ``scaled_mm`` through ``torch._scaled_mm`` with ``use_fast_accum=False`` (``torch-cpu``,
``torch-cuda``) or ``True`` (the ``-fastaccum`` variants). Exactly what torch does is returned; the only
additions are

* **saturation by clamping**: ``saturate=True`` runs ``x.clamp(-max, max)`` before the cast, as torchao and
  TransformerEngine do (float16/bfloat16 input is first widened to float32 in NumPy, exactly: torch's
  vectorised half-precision clamp replaces NaNs by the negative NaN 0xFFFF, and its scalar float16 ->
  float32 conversion of torch 2.13 gives +NaN for -NaN);
  ``saturate=False`` is torch's own conversion, whatever it does;
* **layout and the multiple-of-16 rule** of ``torch._scaled_mm`` on CUDA (``b`` column-major; K and N
  multiples of 16): ``b`` is passed as the transpose of a row-major (N, K) tensor, and K and N are padded
  with zero codes (scale_b and bias entries of padded columns are 1 and 0), the result sliced back to
  (M, N). Appended zero products leave every sum unchanged, and padded columns are discarded, so padding
  is exact (docs/backends.md, "Padding").

Everything torch refuses (stochastic rounding, block/MX scales, bias with float32 output on CUDA, E5M2 x
E5M2 on CUDA, ...) raises :class:`~fp8ref.backends.base.Unsupported` with the reason.

What torch's conversions and ``_scaled_mm`` do is measured, not assumed: :func:`measured` probes the casts
(float64 rounding, NaN codes, overflow without saturation, decoded NaN bits;
:mod:`fp8ref.backends.peer_probe`) and how ``_scaled_mm`` applies its scales, once per process and device,
against the exact reference. ``capabilities.deviations`` are the differences found, ``backend.measured``
the whole measurement; docs/backends.md gives the results for torch 2.13.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from fp8ref.backends._arrays import code_input, dequant_dtype, float_input, write_out
from fp8ref.backends.base import Backend, BackendUnavailable, Capabilities, dtype_name
from fp8ref.backends.peer_probe import Observation, PeerProbe, probe_peer
from fp8ref.formats import FP8_FORMATS, Format

__all__ = ["TorchBackend", "TorchRules", "CPU_RULES", "CUDA_RULES", "TORCH_DTYPES", "torch_cpu",
           "torch_cpu_fastaccum", "torch_cuda", "torch_cuda_fastaccum", "pad_to", "cuda_unavailable_reason",
           "claimed_accumulation", "prepare_scaled_mm", "PreparedMM", "measured"]

#: Format.name -> torch dtype attribute
TORCH_DTYPES = {
    "E4M3": "float8_e4m3fn",
    "E5M2": "float8_e5m2",
    "E4M3FNUZ": "float8_e4m3fnuz",
    "E5M2FNUZ": "float8_e5m2fnuz",
}
_FP8 = tuple(f.name for f in FP8_FORMATS)
_OCP = ("E4M3", "E5M2")


@dataclass(frozen=True)
class TorchRules:
    """The restrictions ``torch._scaled_mm`` imposes on one device (what the backend checks before calling).

    ``pad_multiple``: K and N are padded with zeros to a multiple of it (1: no padding).
    ``bias_dtypes``: output type -> the torch dtype names bias may be passed as, in order of preference
    (empty: bias refused with that output type).
    """

    device: str
    pad_multiple: int
    mm_formats: tuple[tuple[str, str], ...]
    out_dtypes: tuple[str, ...]
    granularities: tuple[tuple[str, str], ...]
    bias_dtypes: dict[str, tuple[str, ...]]


#: torch 2.13 CPU (``_scaled_mm_out_cpu``): any pair of the four FP8 formats, any shape, tensor-wise or
#: row-wise scales, any output type, bias added in float32 (passed as a float32 tensor).
CPU_RULES = TorchRules(
    device="cpu",
    pad_multiple=1,
    mm_formats=tuple((a, b) for a in _FP8 for b in _FP8),
    out_dtypes=("float32", "float16", "bfloat16", *_FP8),
    granularities=(("tensor", "tensor"), ("row", "column")),
    bias_dtypes={d: ("float32",) for d in ("float32", "float16", "bfloat16", *_FP8)},
)

#: CUDA (cuBLASLt / CUTLASS, ``aten/src/ATen/native/cuda/ScaledBlas.cpp``): OCP formats, not E5M2 x E5M2,
#: K and N multiples of 16, bias bf16/fp16 matching the output, no bias with float32 output.
CUDA_RULES = TorchRules(
    device="cuda",
    pad_multiple=16,
    mm_formats=(("E4M3", "E4M3"), ("E4M3", "E5M2"), ("E5M2", "E4M3")),
    out_dtypes=("float32", "float16", "bfloat16", *_OCP),
    granularities=(("tensor", "tensor"), ("row", "column")),
    bias_dtypes={"float32": (), "float16": ("float16",), "bfloat16": ("bfloat16",),
                 "E4M3": ("bfloat16", "float16"), "E5M2": ("bfloat16", "float16")},
)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(f"torch is not installed (pip install 'fp8ref[torch]'): {exc}") from exc
    return torch


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA backends cannot run here, or ``None`` when they can."""
    try:
        torch = _torch()
    except BackendUnavailable as exc:
        return str(exc)
    try:
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} reports no CUDA device (torch.cuda.is_available() is False)"
        cap = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
    except (RuntimeError, AssertionError) as exc:  # a broken driver or a CPU-only build
        return f"CUDA could not be initialised: {exc}"
    if cap < (8, 9):
        return f"{name} has compute capability {cap[0]}.{cap[1]}; torch._scaled_mm needs >= 8.9"
    return None


def pad_to(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``n``."""
    return -(-n // multiple) * multiple


def claimed_accumulation(device_name: str, capability: tuple[int, int], fast_accum: bool) -> str | None:
    """The accumulation preset of :mod:`fp8ref.accum` that ``torch._scaled_mm`` on this GPU is expected to
    follow (cuBLASLt / CUTLASS FP8 kernels: promotion to fp32 every 128 K-elements unless ``fast_accum``),
    or ``None`` where fp8ref has no model. A claim for the harness to test, not a fact."""
    name = device_name.upper()
    if capability[0] == 9:  # Hopper wgmma
        gpu = "h200" if "H200" in name else "h100"
    elif capability == (8, 9):  # Ada mma
        gpu = "l40s" if "L40S" in name else "ada"
    elif capability[0] == 10:  # Blackwell tcgen05: no fast-accumulation variant in the model table
        return "b200-fp8"
    else:
        return None
    return f"{gpu}-fp8-fastaccum" if fast_accum else f"{gpu}-fp8"


class TorchBackend(Backend):
    """torch casts and ``torch._scaled_mm`` on one device, with ``use_fast_accum`` fixed per instance."""

    def __init__(self, name: str, device: str = "cpu", *, fast_accum: bool = False,
                 rules: TorchRules | None = None) -> None:
        torch = _torch()
        if device.startswith("cuda"):
            reason = cuda_unavailable_reason()
            if reason is not None:
                raise BackendUnavailable(reason)
        self._t = torch
        self.name = name
        self.device = device
        self.fast_accum = bool(fast_accum)
        self.rules = rules if rules is not None else (CPU_RULES if device == "cpu" else CUDA_RULES)
        self.capabilities = Capabilities(
            formats=_FP8,
            rounding=("nearest_even",),
            saturate=(False, True),
            ops=("quantize", "dequantize", "amax", "scaled_mm"),
            mm_formats=self.rules.mm_formats,
            granularities=self.rules.granularities,
            out_dtypes=self.rules.out_dtypes,
            accumulation="fp32" if device == "cpu" else claimed_accumulation(
                torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device),
                self.fast_accum),
            accumulation_selectable=False,
            device=device,
        )
        self.measured = measured(self)  # runs the operations above, so after the capabilities
        version = torch.__version__
        deviations = list(self.measured.deviations())
        if device == "cpu":
            deviations.append(f"torch {version} scaled_mm on CPU: a float32 GEMM (oneDNN/MKL) whose "
                              "summation order is unspecified")
        else:
            where = torch.cuda.get_device_name(device)
            deviations.append(f"torch {version} scaled_mm on {where}: cuBLASLt/CUTLASS kernels; the "
                              "promotion interval and split-K order are not documented")
        self.capabilities = replace(self.capabilities, deviations=tuple(deviations))

    # ---- conversions between NumPy and torch -----------------------------------------------------------
    def _fp8_dtype(self, fmt: Format) -> Any:
        return getattr(self._t, TORCH_DTYPES[fmt.name])

    def _to_torch(self, arr: np.ndarray) -> Any:
        t = self._t
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # (ascontiguousarray makes 0-d arrays 1-d)
        if arr.dtype.name == "bfloat16":
            tensor = t.from_numpy(arr.view(np.int16)).view(t.bfloat16)
        else:
            tensor = t.from_numpy(arr)
        return tensor.to(self.device)

    def _from_torch(self, tensor: Any) -> np.ndarray:
        t = self._t
        tensor = tensor.detach().cpu().contiguous()
        if tensor.dtype == t.bfloat16:
            import ml_dtypes

            return tensor.view(t.int16).numpy().view(ml_dtypes.bfloat16)
        if tensor.dtype in tuple(getattr(t, n) for n in TORCH_DTYPES.values()):
            return tensor.view(t.uint8).numpy()
        return tensor.numpy()

    # ---- the operations ----------------------------------------------------------------------------------
    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        f = self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        arr = float_input(x)
        if saturate and arr.dtype.name in ("float16", "bfloat16"):
            # widened in NumPy (exact, NaN sign and payload kept): torch's vectorised half-precision clamp
            # turns NaNs into 0xFFFF (-NaN), and its scalar float16 -> float32 path turns -NaN into +NaN
            arr = arr.astype(np.float32)
        tensor = self._to_torch(arr)
        if saturate:
            tensor = tensor.clamp(-f.max, f.max)  # NaN passes through a float32/float64 clamp
        codes = self._from_torch(tensor.to(self._fp8_dtype(f)))
        return write_out(codes, out, f)

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        self.check_op("dequantize")
        f = self.check_format("dequantize", fmt)
        name = dequant_dtype(dtype).name
        c = self._to_torch(code_input(codes, f)).view(self._fp8_dtype(f))
        return self._from_torch(c.to(getattr(self._t, name)))

    def amax(self, x: Any, axis: Any = None, *, nan: str = "propagate") -> Any:
        self.check_op("amax")
        if nan not in ("propagate", "ignore"):
            raise ValueError(f"nan must be one of ('propagate', 'ignore'), got {nan!r}")
        arr = float_input(x)
        t = self._t
        tensor = self._to_torch(arr).abs()
        if nan == "ignore":
            tensor = t.where(t.isnan(tensor), t.zeros_like(tensor), tensor)
        dims = None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        try:
            r = t.amax(tensor) if dims is None else t.amax(tensor, dim=dims)
        except (RuntimeError, IndexError) as exc:
            if arr.size == 0 or (dims is not None and "out of range" not in str(exc)):
                raise self.unsupported("amax", f"torch.amax refused: {exc}") from exc
            raise ValueError(f"axis: {exc}") from exc
        res = self._from_torch(r.to(t.float32))
        return np.float32(res[()]) if axis is None else res

    def scaled_mm(self, a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *, a_format: Any = "E4M3",
                  b_format: Any = "E4M3", bias: Any = None, out_dtype: Any = np.float32,
                  scale_result: Any = None, accumulate: Any = None, strict_torch: bool = False) -> np.ndarray:
        self.check_op("scaled_mm")
        self.check_accumulate(accumulate)
        prep = prepare_scaled_mm(self, a, b, scale_a, scale_b, a_format=a_format, b_format=b_format,
                                 bias=bias, out_dtype=out_dtype, scale_result=scale_result,
                                 strict_torch=strict_torch)
        try:
            r = self._t._scaled_mm(prep.a, prep.b, prep.scale_a, prep.scale_b, bias=prep.bias,
                                   scale_result=prep.scale_result, out_dtype=prep.out_dtype,
                                   use_fast_accum=self.fast_accum)
        except (RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self.unsupported("scaled_mm", f"torch._scaled_mm refused: {first}") from exc
        res = self._from_torch(r[: prep.m, : prep.n])
        if prep.out_format.bits <= 8:  # FP8 output: the reference returns the ml_dtypes FP8 array
            return res.view(prep.out_format.ml_dtype)
        return res


@dataclass(frozen=True)
class PreparedMM:
    """Torch tensors ready for ``torch._scaled_mm`` (padded), and the unpadded output shape."""

    a: Any
    b: Any
    scale_a: Any
    scale_b: Any
    bias: Any
    scale_result: Any
    out_dtype: Any
    out_format: Format
    m: int
    n: int
    k_padded: int
    n_padded: int


def _exact_as(values: np.ndarray, target: str) -> np.ndarray | None:
    """``values`` converted to the dtype named ``target`` if every value survives unchanged, else None."""
    if target == "bfloat16":
        import ml_dtypes

        conv = values.astype(ml_dtypes.bfloat16)
    else:
        conv = values.astype(target)
    back = conv.astype(np.float64)
    same = (back == values) | (np.isnan(back) & np.isnan(values))
    return conv if bool(np.all(same)) else None


def prepare_scaled_mm(backend: TorchBackend, a: Any, b: Any, scale_a: Any, scale_b: Any, *, a_format: Any,
                      b_format: Any, bias: Any, out_dtype: Any, scale_result: Any,
                      strict_torch: bool = False) -> PreparedMM:
    """Check the arguments with the parser of ``fp8ref.scaled_mm`` (:func:`fp8ref.matmul.args.parse`: the
    same errors for bad input; torch's CUDA restrictions are left to ``backend.rules``), then the rules of
    ``torch._scaled_mm`` in ``backend.rules`` (:class:`Unsupported`); build the padded torch arguments."""
    from fp8ref.matmul.args import parse

    args = parse(a, b, scale_a, scale_b, a_format=a_format, b_format=b_format, bias=bias, out_dtype=out_dtype,
                 scale_result=scale_result, strict_torch=strict_torch, torch_restrictions=False)
    opa, opb, sa, sb, out, bias_v, sr = (args.a, args.b, args.scale_a, args.scale_b, args.out, args.bias,
                                         args.scale_result)
    M, K, N = args.shape

    rules = backend.rules
    fa, fb = opa.fmt, opb.fmt
    if (fa.name, fb.name) not in rules.mm_formats:
        raise backend.unsupported("scaled_mm", f"a_format={fa.name}, b_format={fb.name}: torch._scaled_mm on "
                                               f"{rules.device} accepts {list(rules.mm_formats)}")
    out_name = dtype_name(out.fmt)
    if out_name not in rules.out_dtypes:
        raise backend.unsupported("scaled_mm", f"out_dtype={out_name}: torch._scaled_mm on {rules.device} "
                                               f"accepts {list(rules.out_dtypes)}")
    if (sa.granularity, sb.granularity) not in rules.granularities:
        raise backend.unsupported("scaled_mm", f"scale granularities a={sa.granularity}, b={sb.granularity}: "
                                               "torch._scaled_mm takes (tensor, tensor) or (row, column)")
    Kp, Np = pad_to(K, rules.pad_multiple), pad_to(N, rules.pad_multiple)

    A_p = np.zeros((M, Kp), np.uint8)
    A_p[:, :K] = opa.codes
    Bt_p = np.zeros((Np, Kp), np.uint8)  # row-major (N, K): its transpose is b, column-major
    Bt_p[:N, :K] = opb.codes.T
    ta = backend._to_torch(A_p).view(backend._fp8_dtype(fa))
    tb = backend._to_torch(Bt_p).view(backend._fp8_dtype(fb)).t()

    ga = sa.grid.astype(np.float32)  # float32 values (inputs.py rounds everything else to float32)
    gb = sb.grid.astype(np.float32)
    if sa.granularity == "tensor":
        tsa = backend._to_torch(ga.reshape(()))
        tsb = backend._to_torch(gb.reshape(()))
    else:
        sb_p = np.ones((1, Np), np.float32)
        sb_p[:, :N] = gb.reshape(1, N)
        tsa = backend._to_torch(ga.reshape(M, 1))
        tsb = backend._to_torch(sb_p)

    tbias = None
    if bias_v is not None:
        allowed = rules.bias_dtypes.get(out_name, ())
        if not allowed:
            raise backend.unsupported("scaled_mm", f"bias with out_dtype={out_name} is refused by "
                                                   f"torch._scaled_mm on {rules.device}")
        conv = None
        for cand in allowed:
            conv = _exact_as(bias_v, cand)
            if conv is not None:
                break
        if conv is None:
            raise backend.unsupported("scaled_mm", f"bias values are not exactly representable in "
                                                   f"{' or '.join(allowed)} (torch's bias dtype for "
                                                   f"out_dtype={out_name})")
        padded = np.zeros((Np,), conv.dtype)
        padded[:N] = conv
        tbias = backend._to_torch(padded)

    tres = None if sr is None else backend._to_torch(np.asarray(sr, np.float32).reshape(()))
    if out.fmt.bits <= 8:
        tout = backend._fp8_dtype(out.fmt)
    else:
        tout = getattr(backend._t, out_name)
    return PreparedMM(ta, tb, tsa, tsb, tbias, tres, tout, out.fmt, M, N, Kp, Np)


# ---- what torch does, measured --------------------------------------------------------------------------
_MEASURED: dict[tuple[str, ...], PeerProbe] = {}


def measured(backend: TorchBackend) -> PeerProbe:
    """torch's casts on ``backend.device`` and how its ``_scaled_mm`` applies the scales, measured against
    the exact reference once per process (per torch version and device; the scaled_mm part also per
    ``use_fast_accum`` and rules)."""
    version = backend._t.__version__
    cast_key = (version, backend.device)
    if cast_key not in _MEASURED:
        _MEASURED[cast_key] = probe_peer(
            f"torch {version} ({backend.device})", FP8_FORMATS,
            lambda x, f: backend.quantize(x, f, saturate=False),
            lambda c, f, dtype: backend.dequantize(c, f, dtype=dtype))
    key = (*cast_key, str(backend.fast_accum), backend.rules.device)
    if key not in _MEASURED:
        casts = _MEASURED[cast_key]
        obs = () if casts.error else _scaled_mm_observations(backend)
        _MEASURED[key] = replace(casts, observations=obs)
    return _MEASURED[key]


#: a decisive ``_scaled_mm`` input: E4M3 7 x 7 with both scales float32(0.1), where the three candidate rules
#: give three different float32 results (one rounding: 0.49000000953674316; element-wise scaling:
#: 0.4899999797344208; the scale product first: 0.49000003933906555)
_MM_VALUE, _MM_SCALE = 7.0, np.float32(0.1)


def _scaled_mm_observations(backend: TorchBackend) -> tuple[Observation, ...]:
    from fp8ref.cast.oracle import round_exact
    from fp8ref.formats import E4M3, FP32

    lib = f"torch {backend._t.__version__} ({backend.device})"
    a, s = _MM_VALUE, _MM_SCALE
    exact = FP32.decode(round_exact(Fraction(a) * Fraction(a) * Fraction(float(s)) ** 2, FP32))
    rules = {
        exact: "the scales applied to the exact product, one rounding",
        float(np.float32(np.float32(a) * s) * np.float32(np.float32(a) * s)):
            "each operand multiplied by its scale and rounded to float32 before the product",
        float(np.float32(np.float32(a * a) * np.float32(s * s))):
            "the product multiplied by float32(scale_a * scale_b)",
    }
    code = np.array([[round_exact(a, E4M3)]], np.uint8)
    try:
        got = float(np.asarray(backend.scaled_mm(code, code, s, s)).reshape(()))
    except Exception as exc:  # noqa: BLE001 - recorded; a refusal is not a deviation
        return (Observation("scaled_mm scales", f"not measured ({type(exc).__name__}: {exc})",
                            rules[exact]),)
    found = rules.get(got, f"another result ({got!r})")
    deviation = None
    if got != exact:
        deviation = (f"{lib}: scaled_mm applies the scales as {found} ({a:g} x {a:g} with scales "
                     f"float32({float(s):.1f}): {got!r}, reference {exact!r})")
    return (Observation("scaled_mm scales", found, rules[exact], deviation), _fast_accum_observation(backend))


def _fast_accum_observation(backend: TorchBackend) -> Observation:
    """Whether ``use_fast_accum`` changes anything: one product (8 x 704 x 16, random E4M3 codes of values
    within +-8, unit scales) with both settings. Not a deviation from the reference either way."""
    rng = np.random.default_rng(0)
    a, b = ((rng.integers(0, 0x50, shape) | rng.integers(0, 2, shape) << 7).astype(np.uint8)
            for shape in ((8, 704), (704, 16)))
    name = "use_fast_accum True vs False"
    try:
        p = prepare_scaled_mm(backend, a, b, 1.0, 1.0, a_format="E4M3", b_format="E4M3", bias=None,
                              out_dtype=np.float32, scale_result=None)
        r = [backend._t._scaled_mm(p.a, p.b, p.scale_a, p.scale_b, out_dtype=p.out_dtype, use_fast_accum=f)
             for f in (True, False)]
        differ = int((r[0] != r[1]).sum())
    except Exception as exc:  # noqa: BLE001 - recorded
        return Observation(name, f"not measured ({type(exc).__name__}: {exc})", "-")
    return Observation(name, "identical results" if differ == 0 else
                       f"{differ} of {r[0].numel()} results differ", "-")


# ---- factories registered as built-ins ---------------------------------------------------------------------
def torch_cpu() -> TorchBackend:
    return TorchBackend("torch-cpu", "cpu", fast_accum=False)


def torch_cpu_fastaccum() -> TorchBackend:
    return TorchBackend("torch-cpu-fastaccum", "cpu", fast_accum=True)


def torch_cuda() -> TorchBackend:
    return TorchBackend("torch-cuda", "cuda", fast_accum=False)


def torch_cuda_fastaccum() -> TorchBackend:
    return TorchBackend("torch-cuda-fastaccum", "cuda", fast_accum=True)
