"""Replay measured tensor-core outputs through the models (``fp8ref hwcheck DIR``).

Folder layout (that of Khattak & Mikaitis' ``model_validation`` data): ``DIR/<GPU>/<fmt>/`` holding
``a_<GPU>_<fmt>.txt`` / ``b_<GPU>_<fmt>.txt`` (one dot product per line: K whitespace-separated 8-digit hex
float32 bit patterns), ``c_<GPU>_fp32.txt`` and ``d_<GPU>_<out>.txt`` (32 '0'/'1' characters of a float32
pattern per line; fp16 results are stored widened to float32). tf32 inputs carry low mantissa bits that the
unit ignores: the low 13 bits are cleared.

Replay rules: every line goes through ``tensor_core(GPU, fmt, out, instruction=measured_instruction(...))``
(the instruction the measurements used: ``wgmma`` for the H100/H200 FP8 fp32-output sets, ``mma`` for every
other set — MTC's CUDA drivers are ``mma.sync`` kernels, e.g. ``mma_fp8_output_fp32.cu``; B200 FP8 data are
not ``tcgen05``) with the stored ``c`` — except the H100
and H200 FP8 fp32-output sets, which were measured with ``wgmma`` and an accumulator input of zero (the
stored c file does not apply; ``Validate_TC_models.m`` sets ``C = zeros`` for them): those are replayed
with ``c = 0``. For fp16
outputs the stored float32 ``c`` is first rounded to fp16 (nearest even), the accumulator type of the
instruction. A result matches when the bit patterns agree (any NaN matches any NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8ref.accum.presets import GPUS, tensor_core
from fp8ref.formats import FP16, FP32

FORMAT_DIRS = ("fp16", "bf16", "tf32", "E4M3", "E5M2")
C_ZERO = {("H100", "E4M3"), ("H100", "E5M2"), ("H200", "E4M3"), ("H200", "E5M2")}


def measured_instruction(gpu: str, fmt: str, out: str) -> str:
    """The instruction a measurement set was taken with: ``wgmma`` for the H100/H200 FP8 fp32-output sets
    (``Validate_TC_models.m``: "D = AB + D where D is zero for fp8 with WGMMA"), ``mma`` for the others."""
    return "wgmma" if (gpu, fmt) in C_ZERO and out == "fp32" else "mma"


@dataclass(frozen=True)
class SetResult:
    gpu: str
    fmt: str
    out: str
    total: int
    matched: int
    confirmed: bool
    model: str
    note: str = ""
    # (line, measured, model) of the first mismatches
    mismatches: tuple[tuple[int, float, float], ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.matched == self.total

    @property
    def status(self) -> str:
        if self.ok:
            return "OK" if self.confirmed else "OK (unconfirmed model)"
        return "FAIL" if self.confirmed else "UNEXPLAINED"


def _read_hex(path: Path) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: empty file")
    k = len(rows[0])
    if any(len(r) != k for r in rows):
        raise ValueError(f"{path}: lines have different numbers of values")
    bits = np.array([[int(x, 16) for x in r] for r in rows], dtype=np.uint32)
    return bits


def _read_bin(path: Path) -> np.ndarray:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    bad = [i for i, s in enumerate(lines) if len(s) != 32 or set(s) - {"0", "1"}]
    if bad:
        raise ValueError(f"{path}: line {bad[0] + 1} is not 32 binary digits")
    return np.array([int(s, 2) for s in lines], dtype=np.uint32)


def _f32(bits: np.ndarray) -> np.ndarray:
    return bits.view(np.float32).astype(np.float64)


def load_set(folder: Path, gpu: str, fmt: str, out: str) -> tuple[np.ndarray, ...]:
    """(A, B, c, d) of one measurement set as float64 arrays (A, B of shape (lines, K))."""
    a = _read_hex(folder / f"a_{gpu}_{fmt}.txt")
    b = _read_hex(folder / f"b_{gpu}_{fmt}.txt")
    if fmt == "tf32":
        a = a & np.uint32(0xFFFFE000)
        b = b & np.uint32(0xFFFFE000)
    c = _f32(_read_bin(folder / f"c_{gpu}_fp32.txt"))
    d = _read_bin(folder / f"d_{gpu}_{out}.txt")
    n = len(d)
    if not (len(a) == len(b) == len(c) == n) or a.shape != b.shape:
        raise ValueError(f"{folder}: a, b, c, d files have different numbers of lines "
                         f"({len(a)}, {len(b)}, {len(c)}, {n}) or a/b shapes differ")
    return _f32(a), _f32(b), c, _f32(d)


def replay(A: np.ndarray, B: np.ndarray, c: np.ndarray, d: np.ndarray, model) -> tuple[int, np.ndarray]:
    """Number of matching lines and the model's outputs."""
    got = model.dots(A, B, c)
    g32 = got.astype(np.float32).view(np.uint32)
    d32 = d.astype(np.float32).view(np.uint32)
    same = (g32 == d32) | (np.isnan(got) & np.isnan(d))
    return int(same.sum()), got


def check_set(root: Path, gpu: str, fmt: str, out: str, max_mismatches: int = 5,
              limit: int | None = None) -> SetResult:
    folder = root / gpu / fmt
    A, B, c, d = load_set(folder, gpu, fmt, out)
    if limit is not None:
        A, B, c, d = A[:limit], B[:limit], c[:limit], d[:limit]
    model = tensor_core(gpu, fmt, out, instruction=measured_instruction(gpu, fmt, out))
    notes = []
    if (gpu, fmt) in C_ZERO and out == "fp32":
        c = np.zeros_like(c)
        notes.append("c = 0 (wgmma data)")
    if out == "fp16":
        c = c.astype(np.float16).astype(np.float64)
        notes.append("c rounded to fp16")
    matched, got = replay(A, B, c, d, model)
    bad = np.flatnonzero(~((got.astype(np.float32).view(np.uint32) == d.astype(np.float32).view(np.uint32))
                           | (np.isnan(got) & np.isnan(d))))
    mism = tuple((int(i), float(d[i]), float(got[i])) for i in bad[:max_mismatches])
    return SetResult(gpu, fmt, out, len(d), matched, model.confirmed, model.describe(), "; ".join(notes),
                     mism)


def discover(root: Path) -> list[tuple[str, str, str]]:
    """Every (GPU, format, output) set present under ``root``, in table order."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"hwcheck: {root} is not a directory")
    found = []
    for gpu in GPUS:
        for fmt in FORMAT_DIRS:
            folder = root / gpu / fmt
            if not folder.is_dir():
                continue
            for out in ("fp32", "fp16"):
                if (folder / f"d_{gpu}_{out}.txt").is_file():
                    found.append((gpu, fmt, out))
    return found


def run(root: Path, limit: int | None = None, max_mismatches: int = 5) -> list[SetResult]:
    return [check_set(Path(root), g, f, o, max_mismatches, limit) for g, f, o in discover(Path(root))]


def _hex32(x: float) -> str:
    return f"{int(np.array([x], dtype=np.float32).view(np.uint32)[0]):08x}"


def report(results: list[SetResult]) -> str:
    lines = [f"{'GPU':5} {'in':5} {'out':5} {'matched':>15}  status                  notes"]
    for r in results:
        lines.append(f"{r.gpu:5} {r.fmt:5} {r.out:5} {r.matched:>7}/{r.total:<7} {r.pct:6.2f}%  "
                     f"{r.status:22}  {r.note}" if False else
                     f"{r.gpu:5} {r.fmt:5} {r.out:5} {r.matched:>7}/{r.total:<7} {r.status:22}  {r.note}")
        for line, meas, mod in r.mismatches:
            lines.append(f"      line {line + 1}: measured {meas!r} (0x{_hex32(meas)}), model {mod!r} "
                         f"(0x{_hex32(mod)})")
    fails = [r for r in results if r.confirmed and not r.ok]
    unexpl = [r for r in results if not r.confirmed and not r.ok]
    lines.append(f"{len(results)} sets: {sum(r.ok for r in results)} reproduced 100 %, {len(fails)} modelled "
                 f"set(s) failing, {len(unexpl)} unexplained (unconfirmed models, not failing)")
    return "\n".join(lines)


_ = (FP16, FP32)
