"""The parallel builds of the kernels are parallel: each has its own Numba cache entry (a shared entry made
the parallel build load the serial machine code, docs/performance.md)."""

from __future__ import annotations

from fp8ref.accum import groupwise, rowwise, tiled


def test_twins_have_separate_cache_entries():
    for serial, parallel in (rowwise.BLOCK_GEMM, rowwise.BLOCK_DOTS, rowwise.SEQUENTIAL, rowwise.EXACT,
                             tiled.BLOCK, tiled.SEQUENTIAL, groupwise.GROUP_GEMM):
        assert parallel.targetoptions.get("parallel") and not serial.targetoptions.get("parallel")
        s_index = serial._cache._cache_file._index_path
        p_index = parallel._cache._cache_file._index_path
        assert s_index != p_index and p_index.endswith(".nbi") and "__parallel" in p_index
