"""The progress bar of a training run: tqdm when installed, else a plain one-line bar on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """tqdm when installed, else a plain one-line bar on stderr."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total, self.n, self.desc = total, initial, desc
        self.bar = None
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="step", leave=True, dynamic_ncols=True
            )
        except ImportError:
            self.bar = None

    def update(self, loss: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self._last > 0.2 or self.n == self.total:
            self._last = now
            width = 30
            filled = int(width * self.n / max(1, self.total))
            sys.stderr.write(
                f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.n}/{self.total} loss {loss:.4f}"
            )
            if self.n == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
