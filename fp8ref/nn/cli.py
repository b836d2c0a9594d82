"""``fp8ref train`` and ``fp8ref infer``: argument parsing, and the calls into :mod:`fp8ref.nn`.

``fp8ref train`` with no arguments trains the tiny preset three ways (fp32, fp8-amax, fp8-cscale) on the
embedded Markov corpus and prints a side-by-side table. Everything is checked before anything is created
(:mod:`fp8ref.nn.jobs`); :func:`validate_train_argv` runs those checks alone. ``--backend NAME`` runs the
FP8 linear layers through ``fp8ref.backends.get(NAME)``, resolved here (the command-line layer) and handed
to the trainer as an ops object; a backend's ``Unsupported`` / ``BackendUnavailable`` become one-line
errors (exit 2). Ctrl-C prints the command that continues the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fp8ref.outputs import UsageError

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def _int_list(text: str) -> list[int]:
    """``"-8:16"`` (inclusive range) or ``"0,2,4"``."""
    text = text.strip()
    try:
        if ":" in text:
            lo, hi = text.split(":")
            return list(range(int(lo), int(hi) + 1))
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW:HIGH or a comma-separated list of integers, got {text!r}"
        ) from None


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from fp8ref.nn.config import DEFAULT_COMPARE, PRESETS
    from fp8ref.nn.fp8 import FORMAT_FAMILIES, RECIPES
    from fp8ref.nn.model import DEFAULT_FP8_KINDS, LINEAR_KINDS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--recipe", help=f"one recipe: {', '.join(RECIPES)} (fp8-cscale:N sets its bias)")
    g.add_argument(
        "--compare",
        help=f"comma-separated recipes, each in its own sub-folder (default {','.join(DEFAULT_COMPARE)})",
    )
    g.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run (or comparison) in DIR from its latest "
        "checkpoints; its config.json decides everything",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, help="initialisation and batch seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: a new folder under ./runs/)")
    p.add_argument("--bias", type=int, help="fp8-cscale: the constant scaling bias (default 4)")
    p.add_argument(
        "--formats",
        choices=sorted(FORMAT_FAMILIES),
        help="ocp: E4M3/E5M2 (default); fnuz: the IPU's E4M3FNUZ/E5M2FNUZ",
    )
    p.add_argument(
        "--accumulate",
        help="scaled_mm accumulation: exact (default), fp32, fp16 (with dynamic loss "
        "scaling, the paper's IPU setting), h100-fp8, ...",
    )
    p.add_argument("--backend", help="run the FP8 operations through this fp8ref backend (fp8ref backends)")
    p.add_argument(
        "--fp8-layers",
        help=f"comma-separated layer kinds in FP8, of {','.join(LINEAR_KINDS)} "
        f"(default {','.join(DEFAULT_FP8_KINDS)})",
    )
    p.add_argument("--data", metavar="FILE", help="train on the bytes of FILE instead of the Markov corpus")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--block-size", type=int, help="context length T")
    p.add_argument("--n-layer", type=int)
    p.add_argument("--n-embd", type=int)
    p.add_argument("--n-head", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument(
        "--loss-scale", help="auto (default: dynamic with fp16 accumulation), none, dynamic, or a number"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="BLAS/Numba threads while training (0: leave as is)"
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


_INFER_DESCRIPTION = ("Evaluate a trained checkpoint with FP8 inference: fp32, FP8-AMAX, and FP8-CSCALE "
                      "over a range of biases; prints the window of biases whose loss is within 0.5 % of "
                      "fp32.")


def register(subparsers: Any) -> None:
    from fp8ref.nn.config import DEFAULT_COMPARE
    from fp8ref.nn.fp8 import FORMAT_FAMILIES

    train_help = ("Train a small GPT in NumPy with the paper's FP8 linear layers. With no arguments: the "
                  f"tiny preset, recipes {','.join(DEFAULT_COMPARE)}, on the embedded Markov corpus.")
    p = subparsers.add_parser("train", help="train the tiny NumPy GPT in fp32 / FP8 recipes and compare",
                              description=train_help)
    _train_arguments(p)
    p.set_defaults(func=train_main)

    q = subparsers.add_parser("infer", description=_INFER_DESCRIPTION,
                              help="FP8 post-training-quantised evaluation of a checkpoint "
                              "(AMAX, CSCALE sweep)")
    q.add_argument("checkpoint", nargs="?", help="a run folder (its latest checkpoint) or a checkpoint file")
    q.add_argument("--model", help="a pretrained model (minilm) instead of a checkpoint: docs/models.md")
    q.add_argument(
        "--biases", type=_int_list, default=list(range(-8, 17)), help="LOW:HIGH or a list (default -8:16)"
    )
    q.add_argument("--formats", choices=sorted(FORMAT_FAMILIES))
    q.add_argument("--accumulate", help="scaled_mm accumulation (default exact)")
    q.add_argument("--backend", help="run the FP8 operations through this fp8ref backend")
    q.add_argument("--fp8-layers", help="comma-separated layer kinds in FP8")
    q.add_argument("--eval-batches", type=int)
    q.add_argument("--out", metavar="DIR", help="where ptq.json and the plot go (default: the run folder)")
    q.add_argument("--threads", type=int, default=1)
    q.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="relative loss increase allowed (default 0.005: the paper's 99.5 %% criterion)",
    )
    q.add_argument("--no-plots", action="store_true")
    q.set_defaults(func=infer_main)


# ---- backends (resolved here, the command-line layer) -------------------------------------------------
def _backend_error_classes() -> tuple[type[BaseException], ...]:
    try:
        from fp8ref.backends.base import BackendUnavailable, Unsupported
    except ImportError:
        return ()
    return (Unsupported, BackendUnavailable)


@contextlib.contextmanager
def _backend_errors_as_usage() -> Iterator[None]:
    """A backend's ``Unsupported`` / ``BackendUnavailable`` (caught by class) become ``UsageError``."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, UsageError) and isinstance(exc, _backend_error_classes()):
            raise UsageError(str(exc)) from None
        raise


def _ops(backend: str | None) -> Any:
    """The ops object of ``--backend`` (``fp8ref.backends.get``), or ``None`` for fp8ref's own functions."""
    if backend is None:
        return None
    from fp8ref.backends import get
    from fp8ref.nn.fp8 import require_linear_ops

    try:
        be = get(backend)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    require_linear_ops(be, backend)
    return be


def _config_ops(cfg: Any) -> Any:
    return _ops(None if cfg.backend == "reference" else cfg.backend)


def _check_backend_accumulation(ops: Any, cfgs: list[Any]) -> None:
    """A backend that runs only its own accumulation refuses another ``--accumulate`` (``Unsupported``)."""
    check = getattr(ops, "check_accumulate", None)
    if check is None:
        return
    for cfg in cfgs:
        if cfg.recipe != "fp32":
            check(cfg.accumulate)


# ---- train --------------------------------------------------------------------------------------------
def _accumulate(args: argparse.Namespace) -> str | None:
    """``--accumulate``; without it ``exact`` for the reference, the backend's own (None) for a backend."""
    if args.accumulate is not None:
        return None if args.accumulate == "none" else args.accumulate
    return "exact" if args.backend in (None, "reference") else None


# argparse destinations that are TrainConfig fields of the same name
_CONFIG_ARGS = (
    "steps",
    "seed",
    "bias",
    "formats",
    "data",
    "lr",
    "batch_size",
    "block_size",
    "n_layer",
    "n_embd",
    "n_head",
    "eval_every",
    "checkpoint_every",
    "loss_scale",
    "backend",
)


def _config(args: argparse.Namespace) -> Any:
    from fp8ref.nn.config import TrainConfig

    over: dict[str, Any] = {}
    for arg in _CONFIG_ARGS:
        v = getattr(args, arg)
        if v is not None:
            over[arg] = str(Path(v).resolve()) if arg == "data" else v
    if args.fp8_layers is not None:
        over["fp8_layers"] = tuple(k.strip() for k in args.fp8_layers.split(",") if k.strip())
    over["accumulate"] = _accumulate(args)
    try:
        return TrainConfig.from_preset(args.preset, **over)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _plan(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(job, ops)`` of the parsed arguments; every check made, nothing created (``UsageError``)."""
    from fp8ref.nn.config import DEFAULT_COMPARE
    from fp8ref.nn.jobs import new_job, resume_job

    with _backend_errors_as_usage():
        if args.resume is not None:
            given = [f"--{a.replace('_', '-')}" for a in _CONFIG_ARGS if getattr(args, a) is not None]
            given += [
                f"--{a.replace('_', '-')}"
                for a in ("accumulate", "fp8_layers", "out")
                if getattr(args, a) is not None
            ]
            if given:
                raise UsageError(
                    f"--resume continues the run as its config.json says; {', '.join(given)} "
                    "cannot change it (start a new run instead)"
                )
            job = resume_job(args.resume)
            ops = _config_ops(job.runs[0][1])
        else:
            base = _config(args)
            ops = _ops(args.backend)
            if args.recipe is not None:
                job = new_job(base, [args.recipe], comparison=False, out=args.out)
            else:
                text = args.compare.split(",") if args.compare else DEFAULT_COMPARE
                specs = [s.strip() for s in text if s.strip()]
                job = new_job(base, specs, comparison=True, out=args.out)
        if ops is not None:
            _check_backend_accumulation(ops, [cfg for _, cfg in job.runs])
    return job, ops


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own refusals, as a UsageError instead of an exit
        raise UsageError(message)


def validate_train_argv(argv: list[str]) -> None:
    """Check the arguments of ``fp8ref train`` (``argv`` with or without the leading ``"train"``) exactly as
    the command does before it starts, creating nothing (no folder, no file).

    Raises :class:`fp8ref.outputs.UsageError` when the command would refuse them: the command then prints
    ``fp8ref train: `` followed by the exception's message, one line, and exits with status 2 (for an
    argument argparse itself rejects -- an unknown option, ``--steps x`` -- the message is argparse's; the
    command prints it after its usage line). Returns ``None`` when the command would start training.
    """
    argv = list(argv)
    if argv[:1] == ["train"]:
        argv = argv[1:]
    parser = _RaisingParser(prog="fp8ref train", add_help=False)
    _train_arguments(parser)
    _plan(parser.parse_args(argv))


def train_main(args: argparse.Namespace) -> int:
    from fp8ref.nn import compare as cmp
    from fp8ref.nn.checkpoint import CheckpointError
    from fp8ref.outputs import describe_os_error

    job, ops = _plan(args)
    job.create()
    _header(job.runs[0][1], job.folder)
    for line in job.notices():
        print(f"fp8ref train: {line}", file=sys.stderr)
    outcomes = []
    try:
        with _backend_errors_as_usage():
            for o in job.run_each(
                ops=ops, progress=not args.quiet, threads=args.threads, plots=not args.no_plots
            ):
                if o.error and job.comparison:
                    print(f"fp8ref train: {o.error}", file=sys.stderr)
                outcomes.append(o)
            rows = job.finish(outcomes, plots=not args.no_plots)
    except KeyboardInterrupt:
        print(f"fp8ref train: interrupted; continue the run with: {job.resume_command}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CheckpointError as exc:
        print(f"fp8ref train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed while training (disk full, folder removed...)
        print(
            f"fp8ref train: {describe_os_error(exc)}; the run stopped (continue it with: "
            f"{job.resume_command})",
            file=sys.stderr,
        )
        return 2
    print(cmp.format_table(rows))
    if job.comparison:
        print(f"results: {job.folder}")
    elif outcomes[0].error:
        print(f"fp8ref train: {outcomes[0].error}", file=sys.stderr)
    return EXIT_DIVERGED if any(o.error for o in outcomes) else 0


def _header(cfg: Any, folder: Path) -> None:
    from fp8ref.nn.train import load_data

    data = load_data(cfg)
    best = data.best_loss(cfg.block_size)
    extra = (
        ""
        if best is None
        else (
            f"; entropy rate {data.entropy_rate:.4f} nats/token, best achievable loss "
            f"{best:.4f} at T={cfg.block_size}"
        )
    )
    print(f"data: {data.description}, vocab {data.vocab_size}{extra}")
    print(
        f"model: preset {cfg.preset}, {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} channels, "
        f"T={cfg.block_size}, batch {cfg.batch_size}, {cfg.steps} steps; "
        f"FP8 layers {','.join(cfg.fp8_layers)}, "
        f"formats {cfg.formats}, accumulate {cfg.accumulate or 'backend default'}"
    )
    print(f"run folder: {folder}")


# ---- infer --------------------------------------------------------------------------------------------
def infer_main(args: argparse.Namespace) -> int:
    if args.model is not None:  # a pretrained model: fp8ref/models/cli.py
        from fp8ref.models.cli import infer_model_main

        return infer_model_main(args)
    if args.checkpoint is None:
        print("fp8ref infer: give a checkpoint (a run folder or checkpoint file) or --model", file=sys.stderr)
        return 2
    from fp8ref.nn.atomic import atomic_write
    from fp8ref.nn.checkpoint import CheckpointError
    from fp8ref.nn.infer import evaluate_ptq, format_report, resolve_checkpoint
    from fp8ref.outputs import check_output_file

    layers = None if args.fp8_layers is None else tuple(k.strip() for k in args.fp8_layers.split(","))
    accumulate = _accumulate(args)
    try:
        with _backend_errors_as_usage():
            run, _ = resolve_checkpoint(args.checkpoint)
            out = Path(args.out) if args.out else run
            check_output_file(out / "ptq.json")  # before any work: the destination can be written
            if not args.no_plots:
                check_output_file(out / "ptq_loss_vs_bias.png")
            res = evaluate_ptq(
                args.checkpoint,
                args.biases,
                formats=args.formats,
                accumulate=accumulate,
                fp8_layers=layers,
                eval_batches=args.eval_batches,
                ops=_ops(args.backend),
                threads=args.threads,
                tolerance=args.tolerance,
            )
    except (ValueError, CheckpointError) as exc:  # UsageError is a ValueError
        print(f"fp8ref infer: {exc}", file=sys.stderr)
        return 2
    print(format_report(res))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "ptq.json", (json.dumps(res, indent=2) + "\n").encode())
    if not args.no_plots:
        from fp8ref.nn.plots import plot_ptq

        if plot_ptq(out / "ptq_loss_vs_bias.png", res) is not None:
            print(f"plot: {out / 'ptq_loss_vs_bias.png'}")
    print(f"results: {out / 'ptq.json'}")
    return 0


__all__ = ["register", "train_main", "infer_main", "validate_train_argv"]
