"""The run figures say what they claim: a readable comparison to fp32, every tensor's bias, a visible band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fp8ref.nn import plots  # noqa: E402


def _recs(n: int, loss0: float, bias: dict[str, int] | None = None, drift: float = 0.0) -> list[dict]:
    out = []
    for s in range(n):
        r: dict = {"step": s, "loss": loss0 - 0.002 * s + drift * s}
        if (s + 1) % 50 == 0:
            r["val_loss"] = r["loss"] + 0.01
        if bias is not None:
            r["scale_bias"] = {f"h.{i}.{k}": dict(bias) for i in range(2) for k in ("attn.qkv", "mlp.fc")}
        out.append(r)
    return out


def test_loss_curves_have_a_panel_relative_to_fp32(tmp_path: Path) -> None:
    runs = [
        ("fp8-amax", _recs(200, 2.8, drift=1e-5)),
        ("fp32", _recs(200, 2.8)),
        ("fp8-cscale:4", _recs(200, 2.8)),
    ]
    fig = plots.loss_figure(runs, best=1.12, title="t")
    top, diff = fig.axes
    assert diff.get_ylabel() == "loss vs fp32 (%)"  # fp32 is the reference wherever it is listed
    lines = {line.get_label(): line for line in diff.get_lines()}
    ref = plots._smooth(np.array([r["loss"] for r in runs[1][1]]))
    mine = plots._smooth(np.array([r["loss"] for r in runs[0][1]]))
    np.testing.assert_allclose(lines["fp8-amax (train)"].get_ydata(), 100 * (mine / ref - 1))
    np.testing.assert_array_equal(lines["fp8-cscale:4 (train)"].get_ydata(), 0.0)
    assert {"fp8-amax (val)", "fp8-cscale:4 (val)"} <= set(lines)
    assert len(plots.loss_figure(runs[:1]).axes) == 1  # one run: nothing to compare
    assert (
        plots.plot_losses(tmp_path / "l.png", runs) == tmp_path / "l.png"
        and (tmp_path / "l.png").stat().st_size
    )


def test_scale_bias_of_a_constant_run_is_readable(tmp_path: Path) -> None:
    fig = plots.scale_bias_figure(_recs(100, 2.8, bias={"w": 4, "x": 4, "g": 4}))
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 4
    for ax in panels:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["w: always 4", "x: always 4", "g: always 4"]
        widths = [line.get_linewidth() for line in lines]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3  # all three stay visible
        assert not ax.patches  # no bars
        lo, hi = ax.get_ylim()
        assert lo < 4 - 1 and hi > 4 + 1  # a line with room around it, not a block
        legend_colors = [h.get_color() for h in ax.get_legend().legend_handles]
        assert legend_colors == [line.get_color() for line in lines]  # every legend colour is drawn
    assert plots.plot_scale_bias(tmp_path / "s.png", _recs(3, 2.8)) is None  # fp32: no biases, no figure


def test_scale_bias_legend_summarises_the_distribution() -> None:
    recs = _recs(10, 2.8, bias={"w": 9, "x": 6, "g": 20})
    for r in recs[:3]:
        r["scale_bias"]["h.0.attn.qkv"]["g"] = 22
    fig = plots.scale_bias_figure(recs)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["w: always 9", "x: always 6", "g: 20..22, mostly 20 (70 %)"]


def test_ptq_figure_has_readable_ticks_and_a_visible_band() -> None:
    biases = list(range(-8, 17))
    loss = [3.5 if b < -5 or b > 8 else 1.30 + 0.001 * abs(b - 2) for b in biases]
    res = {
        "fp32": 1.2787,
        "amax": 1.3005,
        "tolerance": 0.005,
        "cscale": {str(b): v for b, v in zip(biases, loss, strict=True)},
        "window": [],
        "plateau": [b for b in biases if -3 <= b <= 6],
    }
    fig = plots.ptq_figure(res)
    top, zoom = fig.axes
    assert top.get_yscale() == "linear"
    lo, hi = top.get_ylim()
    assert len([t for t in top.get_yticks() if lo <= t <= hi]) >= 4
    zlo, zhi = zoom.get_ylim()
    band = [p for p in zoom.patches if p.get_label() == "within 0.5 % of fp32"]
    (rect,) = band
    y0, h = rect.get_y(), rect.get_height()
    assert (y0, y0 + h) == (0.0, 0.5) and h / (zhi - zlo) > 0.1 and rect.get_alpha() >= 0.3
    off = [line for line in zoom.get_lines() if line.get_label() == "FP8-CSCALE, off the scale"]
    assert len(off[0].get_xdata()) == sum(v / 1.2787 - 1 > zhi / 100 for v in loss)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "window (within 0.5 % of fp32): empty" in labels
