"""The memory estimate of docs/trainer.md §5: the formula, and that it bounds the memory a run allocates."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import pytest

from fp8ref.nn import TrainConfig, memory
from fp8ref.nn.train import _train, load_data


def test_block_size_100000_terms() -> None:
    cfg = TrainConfig.from_preset("tiny", block_size=100_000)  # B 32, H 2, L 2, C 32
    est = memory.estimate(cfg, 16, 200_000)
    assert est.attention == 4 * 2 * 32 * 2 * 100_000**2  # f L B H T^2: 4.7 TiB of cached softmax
    assert est.transient == 4 * 3 * 32 * 2 * 100_000**2 + 100_000**2  # the attention backward
    assert est.total == int(
        1.1 * (est.parameters + est.activations + est.attention + est.data + est.transient)
    )
    assert "attention T x T 4.7 TiB" in est.describe()
    assert memory.human(1536) == "1.5 KiB" and memory.human(3) == "3 B"


def test_available_reads_memavailable() -> None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo")
    kib = next(
        int(line.split()[1]) for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable")
    )
    got, source = memory.available()
    assert source == "MemAvailable in /proc/meminfo" and abs(got - kib * 1024) < 2**30  # it moves a little


SHAPES = {
    "attention": dict(recipe="fp32", block_size=256, batch_size=4),
    "channels": dict(recipe="fp32", n_embd=128, n_head=4, batch_size=32),
    "fp8": dict(recipe="fp8-amax", n_embd=128, n_head=4, batch_size=32),
    "vocabulary": dict(
        recipe="fp8-amax", block_size=64, batch_size=32, fp8_layers=("qkv", "lm_head"), data=1
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_estimate_bounds_the_measured_peak(tmp_path: Path, name: str) -> None:
    """tracemalloc's peak over a run of 2 steps (data, model, forward, backward, AdamW, evaluation,
    checkpoints) lies between 1/2 of the estimate and the estimate."""
    kw = dict(SHAPES[name])
    recipe = kw.pop("recipe")
    if kw.pop("data", None):
        kw["data"] = str(tmp_path / "bytes.bin")
        Path(kw["data"]).write_bytes(bytes(range(256)) * 800)  # 256 distinct bytes: the largest vocabulary
    cfg = TrainConfig.from_preset(
        "tiny", steps=2, warmup=1, eval_every=1, eval_batches=1, checkpoint_every=1, **kw
    ).with_recipe(recipe)
    warm = TrainConfig.from_preset(
        "tiny", n_layer=1, n_embd=16, block_size=8, batch_size=2, steps=1, warmup=1
    )
    with tempfile.TemporaryDirectory() as d:  # compile the kernels outside the count (small work arrays)
        _train(warm.with_recipe(recipe), Path(d) / "warm", ops=None, resume=False, progress=False, desc=None)
    tracemalloc.start()
    try:
        _train(cfg, tmp_path / "r", ops=None, resume=False, progress=False, desc=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data = load_data(cfg)
    est = memory.estimate(cfg, data.vocab_size, len(data.tokens)).total
    assert peak <= est <= 2 * peak, (memory.human(peak), memory.human(est))
