"""``fp8ref embed --model minilm`` and the model branch of ``fp8ref infer --model minilm``.

``fp8ref embed`` embeds a sentence set (fp8ref's evaluation set, or ``--sentences FILE``) in float32 and with
each recipe x accumulation model, prints one line per run and writes ``embed.json``, ``embeddings.npz`` and
``embed_metrics.png``. ``fp8ref infer --model minilm`` (the option lives in ``fp8ref/nn/cli.py``, which
calls :func:`infer_model_main`) runs the paper's post-training quantisation sweep on the model and writes
``ptq.json`` and ``ptq_minilm.png``. Every problem with the request is reported before any work, as one line
(``fp8ref embed: ...``, exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

from fp8ref.nn.atomic import atomic_write
from fp8ref.outputs import UsageError, check_output_dir, new_folder

_DESCRIPTION = ("Embed sentences with a pretrained model, its linear layers in FP8 as the trainer runs "
                "them, and compare every recipe x accumulation model with float32: cosine similarity, "
                "nearest-neighbour agreement, same-topic retrieval, per-layer SQNR (docs/models.md).")


def register(subparsers: Any) -> None:
    from fp8ref.models import MODELS
    from fp8ref.nn.fp8 import FORMAT_FAMILIES

    p = subparsers.add_parser("embed", description=_DESCRIPTION,
                              help="embed sentences with a pretrained model (minilm) in fp32 and FP8 recipes "
                              "and compare")
    p.add_argument("--model", required=True, choices=sorted(MODELS), help="the model (docs/models.md)")
    p.add_argument(
        "--recipe",
        default="fp8-amax",
        help="comma-separated recipes as the trainer names them: fp8-amax (default), fp8-cscale:N, "
        "fp8-current, fp8-delayed, mxfp8, nvfp4, fp32, ...",
    )
    p.add_argument(
        "--accumulate",
        help="comma-separated accumulation models: exact (default), fp32, h100-fp8, ...; "
        "with --backend: the backend's own unless given",
    )
    p.add_argument(
        "--formats",
        choices=sorted(FORMAT_FAMILIES),
        default="ocp",
        help="ocp: E4M3 (default); fnuz: E4M3FNUZ",
    )
    p.add_argument(
        "--sentences",
        metavar="FILE",
        help="UTF-8, one sentence per line, optionally TOPIC<TAB>SENTENCE (default: fp8ref's "
        "200-sentence evaluation set)",
    )
    p.add_argument("--out", metavar="DIR", help="results folder (default: a new folder under ./runs/)")
    p.add_argument("--backend", help="run the FP8 operations through this fp8ref backend (fp8ref backends)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per forward pass (consecutive sentences; default 8192)",
    )
    p.add_argument("--threads", type=int, default=1, help="BLAS/Numba threads (0: leave as is; default 1)")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=embed_main)


# ---- shared pieces -----------------------------------------------------------------------------------------
def load_model(name: str) -> Any:
    """The model ``name`` of :data:`fp8ref.models.MODELS`, loaded (errors are one-line UsageErrors)."""
    from fp8ref.models import MODELS

    if name not in MODELS:
        raise UsageError(f"--model {name!r} is not a known model; valid: {', '.join(sorted(MODELS))}")
    mod = importlib.import_module(MODELS[name])
    mod.require()
    return mod.load()


def backend_ops(backend: str | None) -> Any:
    """The ops object of ``--backend`` (``None``: fp8ref's reference functions)."""
    if backend is None or backend == "reference":
        return None
    from fp8ref.backends import get
    from fp8ref.nn.fp8 import require_linear_ops

    try:
        be = get(backend)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"--backend: {exc}") from None
    except Exception as exc:  # BackendUnavailable: a backend whose library or device is missing
        if type(exc).__name__ in ("Unsupported", "BackendUnavailable"):
            raise UsageError(f"--backend {backend}: {exc}") from None
        raise
    require_linear_ops(be, backend)
    return be


def _accumulates(text: str | None, backend: str | None, families: list[str], ops: Any) -> list[str | None]:
    """``--accumulate`` as a list, each checked for every format family and the backend (before any work)."""
    from fp8ref.models import recipes

    if text is None:
        return ["exact" if backend in (None, "reference") else None]
    out = [None if a == "none" else a for a in (t.strip() for t in text.split(",")) if a]
    if not out:
        raise UsageError("--accumulate: no accumulation model given")
    for a in out:
        for fam in families:
            try:
                recipes.check_accumulate(a, fam, ops)
            except ValueError as exc:
                msg = str(exc)
                raise UsageError(f"--accumulate: {msg.removeprefix('accumulate: ')}") from None
            except Exception as exc:  # a backend's Unsupported
                if type(exc).__name__ == "Unsupported":
                    raise UsageError(f"--accumulate: {exc}") from None
                raise
    return out


def _recipes(text: str, formats: str) -> list[str]:
    from fp8ref.models import recipes

    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise UsageError("--recipe: no recipe given")
    for s in specs:
        try:
            recipes.resolve(s, formats=formats, accumulate="exact")
        except ValueError as exc:
            raise UsageError(f"--recipe: {exc}") from None
    if len(set(specs)) != len(specs):
        raise UsageError(f"--recipe lists a recipe twice: {specs}")
    return specs


def _folder(out: str | None, label: str) -> Path:
    return check_output_dir(out if out is not None else new_folder("runs", label))


def _sentences(path: str | None) -> Any:
    from fp8ref.models import sentences

    return sentences.default_set() if path is None else sentences.read(path)


def _header(model: Any, sset: Any, tok: Any) -> None:
    from fp8ref.models.minilm import truncation_note

    b = tok.batch
    topics = "no topics" if sset.topics is None else f"{len(set(sset.topics))} topics"
    print(
        f"model: {model.name} ({model.config.num_hidden_layers} layers, {model.config.hidden_size} channels, "
        f"{len(model.config.linear_layers())} linear layers) from {model.source}"
    )
    print(
        f"sentences: {len(sset)} from {sset.source} ({topics}), {b.n_tokens} tokens, longest "
        f"{int(b.lengths.max())}"
    )
    if tok.truncated:
        note = truncation_note(tok, model.max_seq_length)
        lines = ", ".join(str(sset.lines[i]) for i in tok.truncated[:10])
        print(f"note: {note} (file lines {lines}{' ...' if len(tok.truncated) > 10 else ''})")


def _threads(n: int) -> Any:
    import contextlib

    if n == 0:
        return contextlib.nullcontext()
    if n < 0:
        raise UsageError(f"--threads must be >= 0, got {n}")
    from fp8ref.nn.threads import limited_threads

    return limited_threads(n, numba=True)


def _max_tokens(n: int | None) -> int | None:
    if n is not None and n < 1:
        raise UsageError(f"--max-tokens must be >= 1, got {n}")
    return n


# ---- fp8ref embed ------------------------------------------------------------------------------------------
def embed_main(args: argparse.Namespace) -> int:
    from fp8ref.models import evaluate, plots

    specs = _recipes(args.recipe, args.formats)
    ops = backend_ops(args.backend)
    accs = _accumulates(args.accumulate, args.backend, [args.formats], ops)
    max_tokens = _max_tokens(args.max_tokens)
    folder = _folder(args.out, f"embed-{args.model}")
    sset = _sentences(args.sentences)
    model = load_model(args.model)
    tok = model.tokenize(list(sset.sentences))
    _header(model, sset, tok)
    print(
        f"formats {args.formats}, backend {getattr(ops, 'name', 'reference')}; "
        f"{len(specs) * len(accs)} FP8 run(s) against fp32"
    )
    with _threads(args.threads):
        report, embs = evaluate.compare(
            model, sset, specs, accs, formats=args.formats, ops=ops, max_tokens=max_tokens, log=print
        )
    if report["fp32"]["retrieval"] is not None:
        print(f"fp32 same-topic retrieval {report['fp32']['retrieval']:.3f}")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "embed.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write(folder / "embeddings.npz", lambda f: _save_npz(f, embs))
    if not args.no_plots and plots.plot_embed(folder / "embed_metrics.png", report) is not None:
        print(f"plot: {folder / 'embed_metrics.png'}")
    print(f"results: {folder / 'embed.json'}")
    return 0


def _save_npz(f: Any, embs: dict[str, Any]) -> None:
    import numpy as np

    np.savez(f, **{k.replace("/", "__"): v for k, v in embs.items()})


# ---- fp8ref infer --model ----------------------------------------------------------------------------------
def infer_model_main(args: argparse.Namespace) -> int:
    """``fp8ref infer --model NAME``: the paper's PTQ sweep on a pretrained model (from fp8ref/nn/cli.py)."""
    from fp8ref.models import evaluate, plots

    if getattr(args, "checkpoint", None):
        raise UsageError(
            f"give a checkpoint or --model, not both (got {args.checkpoint} and --model {args.model})"
        )
    unused = [
        f"--{n.replace('_', '-')}"
        for n in ("fp8_layers", "eval_batches")
        if getattr(args, n, None) is not None
    ]
    if unused:
        raise UsageError(
            f"{', '.join(unused)} apply to checkpoints, not to --model (every linear layer of the "
            "model runs in FP8)"
        )
    from fp8ref.models import MODELS

    if args.model not in MODELS:
        raise UsageError(f"--model {args.model!r} is not a known model; valid: {', '.join(sorted(MODELS))}")
    formats = getattr(args, "formats", None)
    families = [formats] if formats else ["ocp", "fnuz"]
    backend = getattr(args, "backend", None)
    ops = backend_ops(backend)
    accs = _accumulates(getattr(args, "accumulate", None), backend, families, ops)
    if len(accs) != 1:
        raise UsageError("--accumulate: give one accumulation model for the sweep")
    biases = list(getattr(args, "biases", range(-8, 17)))
    if not biases:
        raise UsageError("--biases: no bias given")
    tolerance = float(getattr(args, "tolerance", evaluate.TOLERANCE))
    if not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance must lie in [0, 1), got {tolerance}")
    folder = _folder(getattr(args, "out", None), f"ptq-{args.model}")
    model = load_model(args.model)
    sset = _sentences(None)
    _header(model, sset, model.tokenize(list(sset.sentences)))
    print(
        f"sweep: FP8-AMAX and FP8-CSCALE biases {biases[0]}..{biases[-1]} ({len(biases)}), families "
        f"{', '.join(families)}, accumulate {accs[0] or 'backend'}"
    )
    with _threads(int(getattr(args, "threads", 1))):
        res = evaluate.ptq_sweep(
            model,
            sset,
            biases,
            families=families,
            accumulate=accs[0],
            ops=ops,
            tolerance=tolerance,
            log=print,
        )
    print(format_ptq(res))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "ptq.json", (json.dumps(res, indent=2) + "\n").encode())
    if (
        not getattr(args, "no_plots", False)
        and plots.plot_ptq(folder / f"ptq_{args.model}.png", res) is not None
    ):
        print(f"plot: {folder / f'ptq_{args.model}.png'}")
    print(f"results: {folder / 'ptq.json'}")
    return 0


def _span(biases: list[int] | None, swept: list[int]) -> str:
    from fp8ref.nn.infer import describe_biases

    return "- (the sentences have no topics)" if biases is None else describe_biases(biases, swept)


def format_ptq(res: dict[str, Any]) -> str:
    """The summary ``fp8ref infer --model`` prints after the per-run lines."""
    pct = f"{res['tolerance'] * 100:g} %"
    r32 = res["fp32"]["retrieval"]
    lines = [f"fp32 same-topic retrieval: {'-' if r32 is None else f'{r32:.3f}'}"]
    for fam, d in res["families"].items():
        a = d["amax"]
        ra = "-" if a["retrieval"] is None else f"{a['retrieval']:.3f}"
        lines.append(f"{fam}: FP8-AMAX cos mean {a['cosine_mean']:.5f}, retrieval {ra}")
        lines.append(
            f"{fam}: CSCALE window (retrieval within {pct} of fp32): {_span(d['window'], res['biases'])}"
        )
        lines.append(
            f"{fam}: CSCALE biases with mean cosine to fp32 >= {1 - res['tolerance']:g}: "
            f"{_span(d['cosine_window'], res['biases'])}"
        )
    return "\n".join(lines)


__all__ = ["register", "embed_main", "infer_model_main", "format_ptq", "load_model", "backend_ops"]
