"""Running a sweep on Dask distributed: submit the cells that are not complete, follow them, record them.

One Dask task per cell (:func:`fp8ref.sweep.cell.execute`); the scheduler spreads them over the workers.
A worker that dies has its task rescheduled (``distributed.scheduler.allowed-failures``, set to
``retries`` for the LocalCluster made here; a cluster given by ``--scheduler`` or ``client`` keeps its own
setting) and tasks that raise are retried ``retries`` times (``Client.submit(retries=...)``). Each cell
writes its own folder and completion marker, so results do not depend on the number of workers, the order
of completion, retries or resumption. Ctrl-C (or a killed client) loses only the cells that were running.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fp8ref.outputs import UsageError, check_output_dir, new_folder
from fp8ref.sweep import results as rs
from fp8ref.sweep.cell import Task, execute

if TYPE_CHECKING:  # the spec calls this runner (Sweep.run): a type-only import, no cycle at run time
    from fp8ref.sweep.spec import Cell, Sweep

__all__ = ["run", "default_folder", "connect"]


def default_folder(label: str) -> Path:
    """``sweeps/<YYYYmmdd-HHMMSS>-<label>`` (a new name)."""
    return new_folder("sweeps", label)


def connect(
    *, scheduler: str | None = None, workers: int | None = None, retries: int = 3
) -> tuple[Any, list[Any]]:
    """A ``distributed.Client``: of the scheduler at ``scheduler``, else of a new ``LocalCluster`` of
    ``workers`` processes (default: one per CPU) with one thread each. Returns ``(client, to_close)``."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise UsageError(f"fp8ref sweep runs on Dask: pip install 'fp8ref[sweep]' ({exc})") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        return client, [client]
    n = workers or os.cpu_count() or 1
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    return client, [client, cluster]


def _dashboard(client: Any) -> str | None:
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001 - the dashboard is a convenience
        return None
    return client.dashboard_link if "dashboard" in services else None


class _Bar:
    """One progress bar over the cells: done / failed / running (tqdm when installed, else a line)."""

    def __init__(self, total: int, ok: int, failed: int, enabled: bool) -> None:
        self.total, self.ok, self.failed, self.run = total, ok, failed, 0
        self.enabled = enabled
        self.bar = None
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=ok + failed, desc="cells", unit="cell", dynamic_ncols=True)
            self._post()
        except ImportError:
            self.bar = None

    def _post(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"ok {self.ok}, failed {self.failed}, running {self.run}")

    def done(self, record: dict[str, Any]) -> None:
        if record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self._post()
            self.bar.update(1)
        else:
            self._line(force=True)

    def running(self, n: int) -> None:
        if n != self.run:
            self.run = n
            self._post()
            if self.bar is None:
                self._line()

    def _line(self, force: bool = False) -> None:
        import sys

        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last > 1.0:
            self._last = now
            sys.stderr.write(
                f"\rcells {self.ok + self.failed}/{self.total}: ok {self.ok}, failed "
                f"{self.failed}, running {self.run}   "
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            import sys

            sys.stderr.write("\n")


def _lost(cell: Cell, exc: BaseException) -> dict[str, Any]:
    return {
        "name": cell.name,
        "params": cell.params,
        "status": "failed",
        "dir": cell.dir,
        "error": f"{type(exc).__name__}: {exc} (the cell did not complete; fp8ref sweep --resume runs it "
        "again)",
        "wall_s": None,
        "worker": None,
    }


def _dispatch(
    client: Any, sweep: Sweep, todo: list[Cell], out: Path, retries: int, bar: _Bar, log: Callable[[str], Any]
) -> dict[str, dict[str, Any]]:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {}
    for c in todo:
        task = Task(sweep.kind, c.name, c.params, str(out))
        f = client.submit(execute, task, key=f"fp8ref-cell-{c.name}-{token}", pure=False, retries=retries)
        futures[f] = c
    keys = {f.key for f in futures}
    new: dict[str, dict[str, Any]] = {}
    ac = as_completed(list(futures))
    last_poll = 0.0
    try:
        while not ac.is_empty():
            batch = ac.next_batch(block=False)
            for f in batch:
                cell = futures[f]
                try:
                    rec = f.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker (KilledWorker) or an error of the task
                    rec = _lost(cell, exc)
                f.release()
                new[cell.name] = rec
                rs.append_result(out, rec)
                bar.done(rec)
            now = time.monotonic()
            if now - last_poll > 1.0:
                last_poll = now
                try:  # tasks assigned to a worker (some wait there for a thread), at most one per thread
                    busy = min(
                        sum(1 for ks in client.processing().values() for k in ks if k in keys),
                        sum(client.nthreads().values()),
                    )
                except Exception:  # noqa: BLE001 - progress only
                    busy = bar.run
                bar.running(busy)
            if not batch:
                time.sleep(0.02)
    except BaseException:
        client.cancel(list(futures))
        raise
    return new


def run(
    sweep: Sweep,
    out: str | Path | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 3,
    progress: bool = True,
    resume: bool = False,
    rerun_failed: bool = False,
    log: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the cells of ``sweep`` not yet complete in ``out``; return the records, in spec order.

    Every cell is checked before anything is written. A new sweep needs ``out`` absent or empty (default:
    ``sweeps/<time>-<kind>``); ``resume=True`` continues the sweep folder ``out`` (its cells complete
    there are skipped; with ``rerun_failed`` the failed ones run again). ``client``: a
    ``distributed.Client``; else ``scheduler`` (an address) or a LocalCluster of ``workers`` processes.
    Raises :class:`fp8ref.outputs.UsageError` for a spec or folder that cannot be used; re-raises
    ``KeyboardInterrupt`` after recording what completed."""
    log = log or (lambda s: print(s, flush=True))
    if retries < 0:
        raise UsageError(f"--retries must be >= 0, got {retries}")
    cells = sweep.cells
    out = Path(out) if out is not None else default_folder(sweep.kind)
    if resume:
        if not rs.is_sweep_folder(out):
            raise UsageError(f"{out}: not a sweep folder (no {rs.SPEC} and {rs.STATE}/)")
        saved = type(sweep).from_toml(out / rs.SPEC)
        if (saved.kind, saved.grid, saved.fixed) != (sweep.kind, sweep.grid, sweep.fixed):
            raise UsageError(
                f"{out} holds another sweep than the one given (its {rs.SPEC} differs); resume it with "
                f"fp8ref sweep --resume {out}"
            )
    else:
        check_output_dir(out)
        if out.is_dir() and any(out.iterdir()):
            if rs.is_sweep_folder(out):
                raise UsageError(f"{out} already holds a sweep; continue it with fp8ref sweep --resume {out}")
            raise UsageError(f"{out}: exists and is not empty; give a new folder")
    out = out.resolve()
    rs.layout(out)
    if not resume:
        (out / rs.SPEC).write_text(sweep.to_toml(), encoding="utf-8")
    names = [c.name for c in cells]
    done = rs.read_done(out, names)
    if rerun_failed:
        for name, rec in list(done.items()):
            if rec.get("status") != "ok":
                rs.done_path(out, name).unlink()
                del done[name]
    todo = [c for c in cells if c.name not in done]
    rs.write_results(out, [done[n] for n in names if n in done])
    n_failed = sum(1 for r in done.values() if r.get("status") != "ok")
    log(
        f"sweep {out}: {len(cells)} cells ({sweep.kind}), {len(done)} complete"
        f"{f' ({n_failed} failed)' if n_failed else ''}, {len(todo)} to run"
    )
    new: dict[str, dict[str, Any]] = {}
    interrupted = False
    if todo:
        own: list[Any] = []
        bar: _Bar | None = None
        try:
            if client is None:
                client, own = connect(scheduler=scheduler, workers=workers, retries=retries)
            link = _dashboard(client)
            if link:
                import importlib.util

                hint = (
                    ""
                    if importlib.util.find_spec("bokeh")
                    else " (pages need bokeh>=3.1 where the scheduler runs)"
                )
                log(f"dashboard: {link}{hint}")
            bar = _Bar(len(cells), len(done) - n_failed, n_failed, progress)
            new = _dispatch(client, sweep, todo, out, retries, bar, log)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
            for thing in reversed(own):
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a cluster that is going away anyway
                    pass
    done = rs.read_done(out, names)
    records = [done.get(n) or new[n] for n in names if n in done or n in new]
    rs.write_results(out, records)
    if interrupted:
        log(
            f"interrupted: {len(done)} of {len(cells)} cells complete in {out}; "
            f"continue with: fp8ref sweep --resume {out}"
        )
        raise KeyboardInterrupt
    from fp8ref.sweep.kinds import kind_of

    kind_of(sweep.kind).finish(out, cells, {r["name"]: r for r in records}, log)
    ok = sum(1 for r in records if r.get("status") == "ok")
    lost = [r["name"] for r in records if r["name"] not in done]
    log(
        f"{ok} ok, {len(records) - ok} failed"
        + (f" ({len(lost)} did not complete: fp8ref sweep --resume {out} runs them again)" if lost else "")
        + f"; results: {out / rs.RESULTS}; report: fp8ref sweep --report {out}"
    )
    return records
