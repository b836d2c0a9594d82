"""The FP8 linear layer of the paper, with a pluggable implementation of the FP8 operations.

For a linear layer ``y = x @ w + b`` (``x`` [N, K], ``w`` [K, M]) with per-tensor scaling biases
``sb_x``, ``sb_w``, ``sb_g`` (``Q43`` = cast to the E4M3 format of the family, ``Q52`` = to E5M2, round to
nearest even, saturating)::

    forward:  X8 = Q43(x * 2**sb_x),  W8 = Q43(w * 2**sb_w)
              y  = scaled_mm(X8, W8, 2**-sb_x, 2**-sb_w) + b                   # b added in float32
    backward: G8 = Q52(dy * 2**sb_g)
              dx = scaled_mm(G8, W8^T, 2**-sb_g, 2**-sb_w)                     # reuses W8
              dw = scaled_mm(X8^T, G8, 2**-sb_x, 2**-sb_g)                     # reuses X8
              db = sum over rows of dy, in float32

``scaled_mm`` multiplies the exact product of the decoded codes (accumulated as the chosen ``accumulate``
model says) by the two dequantisation scales and rounds once to float32 (``fp8ref.scaled_mm``).

Recipes (:class:`FP8Recipe`) choose the biases:

``fp8-amax``
    the paper: ``sb = scale_bias(amax(t), fmt)`` of the very tensor being cast, ``margin`` 0 for x and w
    and ``grad_margin`` (3) for the gradient; bounds (-31, 31).
``fp8-cscale``
    one constant ``bias`` for every weight, activation and gradient.
``fp8-delayed`` / ``fp8-current``
    TransformerEngine-style delayed (amax history) and current scaling from ``fp8ref.scaling``; their
    scales need not be powers of two, and the recorded ``scale_bias`` is then ``-log2(scale)`` rounded
    to 3 decimals.

Every FP8 operation goes through an *ops* object with the methods ``quantize(x, fmt, rounding=,
saturate=)``, ``dequantize(codes, fmt, dtype=)``, ``amax(x)`` and ``scaled_mm(a, b, scale_a, scale_b,
a_format=, b_format=, out_dtype=, accumulate=)`` -- :class:`ReferenceOps` (fp8ref's own functions) by
default, or any backend of ``fp8ref.backends``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from fp8ref.formats import BF16, E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, FP16, Format, exmy

RECIPES: tuple[str, ...] = ("fp32", "fp8-amax", "fp8-cscale", "fp8-delayed", "fp8-current", "mxfp8", "nvfp4")
# the block-scaled recipes (fp8ref.nn.blockscaled) and their GEMM operand formats
BLOCK_OPERANDS: dict[str, Format] = {"mxfp8": E4M3, "nvfp4": E2M1}
FORMAT_FAMILIES: dict[str, tuple[Format, Format]] = {"ocp": (E4M3, E5M2), "fnuz": (E4M3FNUZ, E5M2FNUZ)}
ROLES: tuple[str, ...] = ("w", "x", "g")


# accumulate= names that the trainer runs as a sequential accumulation of the *true* (unscaled) products
TRUE_DOMAIN: dict[str, Format] = {"fp16": FP16, "bf16": BF16}


@functools.lru_cache(maxsize=512)
def true_domain_accumulator(name: str, shift: int) -> Any:
    """Sequential accumulation in ``name`` (fp16 / bf16) of the true products of two operands whose
    scaling biases add up to ``shift``.

    ``scaled_mm`` accumulates the products of the decoded *codes* and applies the scales afterwards. The IPU
    of the paper outputs FP16 and needs loss scaling, so its FP16 accumulator holds true magnitudes (with
    amax-scaled operands, code products of up to 448 * 448 would overflow FP16 at once). The code products are
    ``2**shift`` times the true ones, so rounding the true partial sums to FP16 is rounding the code partial
    sums to the format with FP16's fields and exponent bias ``15 - shift``; the epilogue's ``* 2**-shift`` is
    exact. The model is ``fp8ref.accum.Sequential`` with that accumulator format.
    """
    from fp8ref.accum import Sequential

    base = TRUE_DOMAIN[name]
    acc = exmy(
        base.ebits,
        base.mbits,
        bias=base.bias - shift,
        nan="ieee",
        has_inf=True,
        name=f"{base.name}*2^{shift}",
    )
    return Sequential(acc_format=acc, name=f"{name} (true magnitudes, operand biases {shift})")


def check_accumulate(accumulate: Any, formats: str, recipe: str | None = None) -> None:
    """Refuse (``ValueError`` naming it) an ``accumulate=`` that the three GEMMs of an FP8 linear layer with
    the format family ``formats`` cannot run: not ``None`` or the exact name of an ``fp8ref.accum`` preset,
    or a model that cannot take the operand pairs E4M3 x E4M3, E5M2 x E4M3 and E4M3 x E5M2 of the family
    (for the block-scaled ``recipe`` s ``mxfp8`` / ``nvfp4``: E4M3 x E4M3 / E2M1 x E2M1)."""
    if accumulate is None:
        return
    from fp8ref import accum

    if not isinstance(accumulate, str):
        raise ValueError(f"accumulate must be the name of an accumulation model or None, got {accumulate!r}")
    try:
        model = accum.get(accumulate)
    except ValueError as exc:
        raise ValueError(f"accumulate: {exc}") from None
    if accumulate not in accum.PRESETS:
        raise ValueError(f"accumulate: write {accumulate.strip().lower()!r}, not {accumulate!r}")
    fwd, grad = FORMAT_FAMILIES[formats]
    if recipe in BLOCK_OPERANDS:
        fwd = grad = BLOCK_OPERANDS[recipe]
    for a, b in ((fwd, fwd), (grad, fwd), (fwd, grad)):
        try:
            model.for_inputs(a, b)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"accumulate={accumulate!r} cannot take {a.name} x {b.name} operands: {exc}"
            ) from None


def require_linear_ops(ops: Any, backend: str) -> None:
    """Refuse (``UsageError``) the ops object of ``--backend backend`` when its ``capabilities`` lack an
    operation :class:`FP8Linear` calls (amax, quantize, scaled_mm)."""
    from fp8ref.outputs import UsageError

    caps = getattr(ops, "capabilities", None)
    missing = [op for op in ("amax", "quantize", "scaled_mm") if caps is not None and op not in caps.ops]
    if missing:
        raise UsageError(
            f"--backend {backend} does not implement {', '.join(missing)}, which the FP8 linear layers need"
        )


class NonFiniteError(FloatingPointError):
    """A tensor about to be cast to FP8 holds a NaN or an infinity; ``where`` names layer and tensor."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"non-finite values in {where}")


class ReferenceOps:
    """fp8ref's reference implementation of the four FP8 operations (the default ops object)."""

    name = "reference"

    def quantize(
        self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = False
    ) -> np.ndarray:
        from fp8ref.cast import quantize

        return quantize(x, fmt, rounding=rounding, saturate=saturate)

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        from fp8ref.cast import dequantize

        return dequantize(codes, fmt, dtype=dtype)

    def amax(self, x: Any) -> Any:
        from fp8ref.scaling import amax

        return amax(x)

    def scaled_mm(
        self,
        a: Any,
        b: Any,
        scale_a: Any = 1.0,
        scale_b: Any = 1.0,
        *,
        a_format: Any,
        b_format: Any,
        out_dtype: Any = np.float32,
        accumulate: Any = "exact",
    ) -> np.ndarray:
        """``fp8ref.scaled_mm``; ``accumulate=None`` means the reference default, ``"exact"``."""
        from fp8ref.matmul import scaled_mm

        if accumulate is None:
            accumulate = "exact"
        return scaled_mm(
            a,
            b,
            scale_a,
            scale_b,
            a_format=a_format,
            b_format=b_format,
            out_dtype=out_dtype,
            accumulate=accumulate,
        )


@dataclass(frozen=True)
class FP8Recipe:
    """How the FP8 linear layers scale and multiply.

    ``accumulate`` is passed to ``scaled_mm`` (``None``: the ops object's own accumulation, for a backend
    that cannot emulate others). ``bounds`` clip every integer bias (the IPU's 6-bit signed scale).
    """

    name: str = "fp8-amax"
    formats: str = "ocp"
    bias: int = 4
    grad_margin: int = 3
    accumulate: str | None = "exact"
    bounds: tuple[int, int] = (-31, 31)
    history: int = 16
    rounding: str = "nearest_even"

    def __post_init__(self) -> None:
        if self.name not in RECIPES or self.name == "fp32":
            raise ValueError(
                f"recipe must be one of {[r for r in RECIPES if r != 'fp32']}, got {self.name!r}"
            )
        if self.formats not in FORMAT_FAMILIES:
            raise ValueError(f"formats must be one of {list(FORMAT_FAMILIES)}, got {self.formats!r}")
        if not isinstance(self.bias, (int, np.integer)) or not self.bounds[0] <= self.bias <= self.bounds[1]:
            raise ValueError(f"bias must be an integer in {list(self.bounds)}, got {self.bias!r}")
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")
        if self.accumulate in TRUE_DOMAIN and self.name in ("fp8-delayed", "fp8-current", *BLOCK_OPERANDS):
            raise ValueError(
                f"accumulate={self.accumulate!r} accumulates true magnitudes, which needs power-of-two "
                f"scales: use it with fp8-amax or fp8-cscale, not {self.name}"
            )

    @property
    def fwd_format(self) -> Format:
        return FORMAT_FAMILIES[self.formats][0]

    @property
    def grad_format(self) -> Format:
        return FORMAT_FAMILIES[self.formats][1]

    def margin(self, role: str) -> int:
        return self.grad_margin if role == "g" else 0


@dataclass
class Quantized:
    """A per-tensor scaled FP8 tensor: ``value ~= dequantize(codes) * scale``. ``bias`` is the paper's
    integer scaling bias (``scale == 2**-bias``) or, for a scale that is not a power of two,
    ``log2(1 / scale)`` as a float."""

    codes: np.ndarray
    fmt: Format
    scale: np.float32
    bias: int | float
    amax: float


class TensorScaler:
    """Chooses the scale of one tensor (one role of one layer) under a recipe and holds its state.

    The scale rules are fp8ref.scaling's (``JustInTime``, ``Constant``, ``Delayed``, ``Current``); the
    amax comes from the ops object. ``scales(amax, fmt, update)`` returns ``(quant multiplier q,
    dequant multiplier s, integer bias or None)``; for ``Delayed`` it also advances the amax history
    when ``update`` is true (never during evaluation).
    """

    def __init__(self, recipe: FP8Recipe, role: str) -> None:
        from fp8ref.scaling import Constant, Current, Delayed, JustInTime

        self.recipe = recipe
        self.role = role
        name = recipe.name
        if name == "fp8-amax":
            self.rule: Any = JustInTime(margin=recipe.margin(role), bounds=recipe.bounds)
        elif name == "fp8-cscale":
            self.rule = Constant(int(recipe.bias))
        elif name == "fp8-delayed":
            self.rule = Delayed(history_len=recipe.history)
        else:
            self.rule = Current()
        self.state: Any = self.rule.initial_state() if name == "fp8-delayed" else None

    def scales(
        self, amax: np.float32, fmt: Format, update: bool
    ) -> tuple[np.float32, np.float32, int | None]:
        from fp8ref.scaling import rules

        r = self.rule
        if self.recipe.name == "fp8-amax":
            q, s, b = rules.just_in_time(np.asarray(amax), fmt, r)
        elif self.recipe.name == "fp8-cscale":
            q, s, b = rules.constant(r.bias)
        elif self.recipe.name == "fp8-delayed":
            q, s, b = rules.delayed_scales(self.state)
            if update:
                self.state = rules.delayed_update(r, self.state, np.float32(amax), fmt)
        else:
            q, s, b = rules.current(np.asarray(amax), fmt, r, float(np.finfo(np.float32).max))
        return np.float32(q), np.float32(s), None if b is None else int(b)

    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.state is None:
            return {}
        return {"amax_history": np.array(self.state.amax_history), "scale": np.array(self.state.scale)}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.recipe.name != "fp8-delayed":
            return
        from fp8ref.scaling import DelayedState

        if set(arrays) != {"amax_history", "scale"}:
            raise ValueError(f"delayed-scaling state needs amax_history and scale, got {sorted(arrays)}")
        self.state = DelayedState(arrays["amax_history"], np.float32(arrays["scale"]))


class FP8Linear:
    """Linear executor running one layer's three GEMMs in FP8 (see the module docstring).

    ``last_bias`` holds the biases used in the latest forward/backward (``{"w", "x", "g"}``);
    ``capture`` (a list, or ``None``) receives one record per forward+backward when set.
    """

    def __init__(self, name: str, recipe: FP8Recipe, ops: Any = None) -> None:
        self.name = name
        self.recipe = recipe
        self.ops = ops if ops is not None else ReferenceOps()
        self.scalers = {role: TensorScaler(recipe, role) for role in ROLES}
        self.last_bias: dict[str, int | float] = {}
        self.training = True
        self.capture: list[dict[str, Any]] | None = None
        self._pending: dict[str, Any] | None = None

    # ---- casts ----------------------------------------------------------------------------------------
    def quantize(self, t: np.ndarray, role: str) -> Quantized:
        """``Q(t * q)`` with ``q`` from the recipe: the product in float32 (round to nearest even, as
        ``fp8ref.quantize_scaled``), then one saturating cast through the ops object."""
        fmt = self.recipe.grad_format if role == "g" else self.recipe.fwd_format
        amax = np.float32(self.ops.amax(t))
        if not np.isfinite(amax):
            raise NonFiniteError(f"layer {self.name}, tensor {_ROLE_NAMES[role]}")
        q, s, bias = self.scalers[role].scales(amax, fmt, update=self.training)
        with np.errstate(over="ignore", under="ignore"):
            scaled = t * q
        codes = self.ops.quantize(scaled, fmt, rounding=self.recipe.rounding, saturate=True)
        b: int | float = bias if bias is not None else float(-np.log2(np.float64(s)))
        self.last_bias[role] = b
        return Quantized(codes=codes, fmt=fmt, scale=s, bias=b, amax=float(amax))

    def accumulation(self, a: Quantized, b: Quantized) -> Any:
        """The ``accumulate=`` argument of the GEMM ``a @ b``: the recipe's, except for the true-magnitude
        accumulators ``"fp16"`` / ``"bf16"`` (see :data:`TRUE_DOMAIN`)."""
        acc = self.recipe.accumulate
        if isinstance(acc, str) and acc in TRUE_DOMAIN:
            return true_domain_accumulator(acc, int(a.bias) + int(b.bias))
        return acc

    def _mm(self, a: Quantized, b_codes: np.ndarray, b: Quantized) -> np.ndarray:
        return self.ops.scaled_mm(
            np.ascontiguousarray(a.codes),
            np.ascontiguousarray(b_codes),
            a.scale,
            b.scale,
            a_format=a.fmt,
            b_format=b.fmt,
            out_dtype=np.float32,
            accumulate=self.accumulation(a, b),
        )

    # ---- executor protocol ------------------------------------------------------------------------------
    def forward(
        self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        """x [N, K], w [K, M] -> y [N, M]."""
        qw = self.quantize(w, "w")
        qx = self.quantize(x, "x")
        y = self._mm(qx, qw.codes, qw)  # [N, M]
        if self.capture is not None:
            r = self.recipe
            self._pending = {
                "layer": self.name,
                "recipe": r.name,
                "formats": (r.fwd_format.name, r.grad_format.name),
                "accumulate": r.accumulate,
                "x": x.copy(),
                "w": w.copy(),
                "x_codes": qx.codes.copy(),
                "w_codes": qw.codes.copy(),
                "bias_x": qx.bias,
                "bias_w": qw.bias,
                "scale_x": qx.scale,
                "scale_w": qw.scale,
                "y": y.copy(),
            }
            self.capture.append(self._pending)  # in forward order; the backward completes it
        if b is not None:
            y = y + b
        return y, (qx, qw, b is not None)

    def backward(
        self, name: str, dy: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """dy [N, M] -> (dx [N, K], dw [K, M], db [M] or None)."""
        qx, qw, has_bias = cache
        qg = self.quantize(dy, "g")
        dx = self._mm(qg, qw.codes.T, qw)  # [N, K] = G8 @ W8^T
        dw = self._mm(_transposed(qx), qg.codes, qg)  # [K, M] = X8^T @ G8
        db = dy.sum(axis=0) if has_bias else None
        if self._pending is not None:
            self._pending.update(
                {
                    "dy": dy.copy(),
                    "g_codes": qg.codes.copy(),
                    "bias_g": qg.bias,
                    "scale_g": qg.scale,
                    "dx": dx.copy(),
                    "dw": dw.copy(),
                }
            )
            self._pending = None
        return dx, dw, db

    # ---- recipe state ----------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The recipe state (delayed scaling: amax history and scale per role) as named arrays."""
        out = {}
        for role, s in self.scalers.items():
            for k, v in s.state_arrays().items():
                out[f"{self.name}.{role}.{k}"] = v
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for role, s in self.scalers.items():
            prefix = f"{self.name}.{role}."
            s.load_state({k[len(prefix) :]: np.array(v) for k, v in arrays.items() if k.startswith(prefix)})


_ROLE_NAMES = {"w": "w (weight)", "x": "x (input activation)", "g": "g (output gradient dY)"}


def _transposed(q: Quantized) -> Quantized:
    return Quantized(codes=q.codes.T, fmt=q.fmt, scale=q.scale, bias=q.bias, amax=q.amax)
