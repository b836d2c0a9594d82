"""The FP8 linear layer: its three GEMMs are the paper's formulas, computed independently with
fp8ref.quantize + fp8ref.scaled_mm; scales follow fp8ref.scaling's recipes; ops are injectable."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
from fp8ref.formats import E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, Format
from fp8ref.nn.fp8 import FP8Linear, FP8Recipe, NonFiniteError, ReferenceOps


def paper_bias(t: np.ndarray, fmt: Format, margin: int = 0) -> int:
    """floor(log2(fmt.max / amax)) - margin clipped to [-31, 31], by search: the largest k with
    amax * 2**k <= fmt.max (exact in float64)."""
    a = float(np.abs(t.astype(np.float64)).max())
    k = -200
    while a * 2.0 ** (k + 1) <= fmt.max:
        k += 1
    return int(np.clip(k - margin, -31, 31))


def q(t: np.ndarray, fmt: Format, bias: int) -> np.ndarray:
    return fp8ref.quantize(t.astype(np.float64) * 2.0**bias, fmt, rounding="nearest_even", saturate=True)


def mm(a: np.ndarray, fa: Format, ba: int, b: np.ndarray, fb: Format, bb: int) -> np.ndarray:
    return fp8ref.scaled_mm(
        np.ascontiguousarray(a),
        np.ascontiguousarray(b),
        np.float32(2.0**-ba),
        np.float32(2.0**-bb),
        a_format=fa,
        b_format=fb,
        out_dtype=np.float32,
        accumulate="exact",
    )


def tensors(seed: int, n: int = 24, k: int = 16, m: int = 12) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, k)) * 1.7).astype(np.float32)
    w = (rng.standard_normal((k, m)) * 0.02).astype(np.float32)
    b = (rng.standard_normal(m) * 0.1).astype(np.float32)
    dy = (rng.standard_normal((n, m)) * 3e-4).astype(np.float32)
    return x, w, b, dy


@pytest.mark.parametrize("family,f43,f52", [("ocp", E4M3, E5M2), ("fnuz", E4M3FNUZ, E5M2FNUZ)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_amax_gemms_equal_the_paper_formulas(family: str, f43: Format, f52: Format, seed: int) -> None:
    x, w, b, dy = tensors(seed)
    lin = FP8Linear("l", FP8Recipe("fp8-amax", formats=family))
    y, cache = lin.forward("l", x, w, b)
    dx, dw, db = lin.backward("l", dy, cache)

    sx, sw, sg = paper_bias(x, f43), paper_bias(w, f43), paper_bias(dy, f52, margin=3)
    assert lin.last_bias == {"w": sw, "x": sx, "g": sg}
    X8, W8, G8 = q(x, f43, sx), q(w, f43, sw), q(dy, f52, sg)
    y_ref = mm(X8, f43, sx, W8, f43, sw)
    np.testing.assert_array_equal(y, y_ref + b)  # bias added afterwards in float32
    np.testing.assert_array_equal(dx, mm(G8, f52, sg, W8.T, f43, sw))  # dX = G8 @ W8^T
    np.testing.assert_array_equal(dw, mm(X8.T, f43, sx, G8, f52, sg))  # dW = X8^T @ G8
    np.testing.assert_array_equal(db, dy.sum(axis=0))
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == np.float32

    # the semantics, checked once more against plain float64 algebra on the decoded codes
    deq = lambda c, f, s: fp8ref.dequantize(c, f, dtype=np.float64) * 2.0**-s  # noqa: E731
    np.testing.assert_allclose(y - b, deq(X8, f43, sx) @ deq(W8, f43, sw), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dw, deq(X8, f43, sx).T @ deq(G8, f52, sg), rtol=1e-6, atol=1e-15)
    # and FP8 is close to float32 (it is a quantisation, not a different function)
    np.testing.assert_allclose(y - b, x @ w, rtol=0.1, atol=0.02)


def test_gradient_margin_and_amax_placement() -> None:
    x, w, b, dy = tensors(5)
    lin = FP8Linear("l", FP8Recipe("fp8-amax"))
    _, cache = lin.forward("l", x, w, b)
    lin.backward("l", dy, cache)
    qx, qw, _ = cache
    # amax * 2**bias lies in (max/2, max] for x and w ...
    for t, qt in ((x, qx), (w, qw)):
        top = float(np.abs(t).max()) * 2.0**qt.bias
        assert E4M3.max / 2 < top <= E4M3.max
    # ... and the gradient keeps 3 binades of headroom
    top_g = float(np.abs(dy).max()) * 2.0 ** lin.last_bias["g"]
    assert E5M2.max / 16 < top_g <= E5M2.max / 8


@pytest.mark.parametrize("bias", [-2, 4, 9])
def test_cscale_uses_one_constant_bias(bias: int) -> None:
    x, w, b, dy = tensors(3)
    lin = FP8Linear("l", FP8Recipe("fp8-cscale", bias=bias))
    y, cache = lin.forward("l", x, w, None)
    dx, dw, db = lin.backward("l", dy, cache)
    assert lin.last_bias == {"w": bias, "x": bias, "g": bias}
    assert db is None
    X8, W8, G8 = q(x, E4M3, bias), q(w, E4M3, bias), q(dy, E5M2, bias)
    np.testing.assert_array_equal(y, mm(X8, E4M3, bias, W8, E4M3, bias))
    np.testing.assert_array_equal(dx, mm(G8, E5M2, bias, W8.T, E4M3, bias))
    np.testing.assert_array_equal(dw, mm(X8.T, E4M3, bias, G8, E5M2, bias))


def test_cscale_degrades_outside_its_window() -> None:
    """A too-small bias flushes the weights to zero (underflow); a too-large one saturates x (overflow)."""
    x, w, b, dy = tensors(4)
    ref = x @ w
    err = {}
    for bias in (-8, 5, 14):
        lin = FP8Linear("l", FP8Recipe("fp8-cscale", bias=bias))
        y, _ = lin.forward("l", x, w, None)
        err[bias] = float(np.abs(y - ref).max() / np.abs(ref).max())
    assert err[5] < 0.1
    assert err[-8] > 0.9  # weights ~0.02 * 2**-8 underflow E4M3
    assert err[14] > 0.5  # activations ~2 * 2**14 saturate at 448


@pytest.mark.parametrize(
    "name,rule", [("fp8-amax", None), ("fp8-cscale", None), ("fp8-current", None), ("fp8-delayed", None)]
)
def test_codes_equal_quantize_scaled(name: str, rule: None) -> None:
    """The layer's cast (amax from the ops object, scale rule, float32 multiply, cast) is bit-identical to
    fp8ref.quantize_scaled with the matching recipe, state included."""
    from fp8ref.scaling import Constant, Current, Delayed, JustInTime

    recipe = FP8Recipe(name, bias=3, history=4)
    lin = FP8Linear("l", recipe)
    objs = {
        "fp8-amax": {"x": JustInTime(0), "g": JustInTime(3)},
        "fp8-cscale": {"x": Constant(3), "g": Constant(3)},
        "fp8-current": {"x": Current(), "g": Current()},
        "fp8-delayed": {"x": Delayed(history_len=4), "g": Delayed(history_len=4)},
    }[name]
    states = {"x": None, "g": None}
    rng = np.random.default_rng(9)
    for step in range(4):
        for role, fmt in (("x", E4M3), ("g", E5M2)):
            t = (rng.standard_normal((8, 8)) * 10.0 ** rng.integers(-4, 2)).astype(np.float32)
            got = lin.quantize(t, role)
            st = fp8ref.quantize_scaled(t, fmt, objs[role], state=states[role])
            states[role] = st.state
            np.testing.assert_array_equal(got.codes, st.codes, err_msg=f"{name} {role} step {step}")
            assert np.float32(got.scale) == np.float32(st.scale)
            if st.bias is not None:
                assert got.bias == int(st.bias)


def test_delayed_state_not_updated_in_evaluation() -> None:
    lin = FP8Linear("l", FP8Recipe("fp8-delayed", history=4))
    x = np.ones((4, 4), np.float32)
    lin.training = False
    lin.quantize(x, "x")
    assert not lin.state_arrays()["l.x.amax_history"].any()
    lin.training = True
    lin.quantize(x, "x")
    assert lin.state_arrays()["l.x.amax_history"].any()
    saved = {k: v.copy() for k, v in lin.state_arrays().items()}
    other = FP8Linear("l", FP8Recipe("fp8-delayed", history=4))
    other.load_state(saved)
    for k, v in other.state_arrays().items():
        np.testing.assert_array_equal(v, saved[k])


def test_non_finite_input_names_layer_and_tensor() -> None:
    x, w, b, dy = tensors(0)
    lin = FP8Linear("h.1.mlp.fc", FP8Recipe("fp8-amax"))
    x[3, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"h\.1\.mlp\.fc.*x \(input activation\)"):
        lin.forward("h.1.mlp.fc", x, w, b)
    _, cache = lin.forward("h.1.mlp.fc", np.ones_like(x), w, b)
    dy[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"g \(output gradient"):
        lin.backward("h.1.mlp.fc", dy, cache)


class CountingOps:
    """An ops object that delegates to the reference and counts the calls."""

    def __init__(self) -> None:
        self.inner = ReferenceOps()
        self.calls: dict[str, int] = {"quantize": 0, "dequantize": 0, "amax": 0, "scaled_mm": 0}
        self.accumulate: set = set()

    def quantize(self, x, fmt, *, rounding="nearest_even", saturate=False):  # noqa: ANN001
        self.calls["quantize"] += 1
        assert saturate is True
        return self.inner.quantize(x, fmt, rounding=rounding, saturate=saturate)

    def dequantize(self, codes, fmt, *, dtype=np.float32):  # noqa: ANN001
        self.calls["dequantize"] += 1
        return self.inner.dequantize(codes, fmt, dtype=dtype)

    def amax(self, x):  # noqa: ANN001
        self.calls["amax"] += 1
        return self.inner.amax(x)

    def scaled_mm(
        self,
        a,
        b,
        scale_a=1.0,
        scale_b=1.0,
        *,
        a_format,
        b_format,
        out_dtype=np.float32,  # noqa: ANN001
        accumulate="exact",
    ):
        self.calls["scaled_mm"] += 1
        self.accumulate.add(accumulate)
        return self.inner.scaled_mm(
            a,
            b,
            scale_a,
            scale_b,
            a_format=a_format,
            b_format=b_format,
            out_dtype=out_dtype,
            accumulate=accumulate,
        )


def test_every_fp8_operation_goes_through_the_ops_object() -> None:
    x, w, b, dy = tensors(1)
    ops = CountingOps()
    lin = FP8Linear("l", FP8Recipe("fp8-amax"), ops)
    y, cache = lin.forward("l", x, w, b)
    dx, dw, _ = lin.backward("l", dy, cache)
    assert ops.calls == {"quantize": 3, "dequantize": 0, "amax": 3, "scaled_mm": 3}
    ref = FP8Linear("l", FP8Recipe("fp8-amax"))
    y2, c2 = ref.forward("l", x, w, b)
    dx2, dw2, _ = ref.backward("l", dy, c2)
    for u, v in ((y, y2), (dx, dx2), (dw, dw2)):
        np.testing.assert_array_equal(u, v)
    none = FP8Linear("l", FP8Recipe("fp8-amax", accumulate=None), ops)
    none.forward("l", x, w, b)
    assert ops.accumulate == {"exact", None}


def test_recipe_validation() -> None:
    with pytest.raises(ValueError, match="recipe"):
        FP8Recipe("fp32")
    with pytest.raises(ValueError, match="formats"):
        FP8Recipe("fp8-amax", formats="ieee")
    with pytest.raises(ValueError, match="bias"):
        FP8Recipe("fp8-cscale", bias=40)
