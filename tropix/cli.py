"""The ``tropix`` command: ``tropix analyze`` and ``tropix compress`` on real transformers.

User mistakes (a missing model or text file, an unreadable model, an empty text, a bad tolerance)
print one line ``tropix: error: ...`` and exit with status 2, without a traceback.

Examples
--------
>>> main(["--version"])
tropix 0.1.0
0
>>> main(["analyze", "--model", "/no/such/model"])  # stderr: "tropix: error: no model at /no/such/model: ..."
2
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main", "build_parser"]


def _progress_factory(quiet: bool):
    """``factory(stage, total) -> tick(n_done)`` drawing tqdm bars on stderr (none when quiet or not a TTY)."""

    def factory(stage, total):
        if quiet:
            return lambda n: None
        from tqdm import tqdm

        bar = tqdm(total=total, desc=stage, file=sys.stderr, leave=False, disable=None, dynamic_ncols=True)

        def tick(n):
            bar.update(n - bar.n)
            if n >= total:
                bar.close()

        return tick

    return factory


def _texts(args):
    from .models.corpus import default_corpus, read_texts

    if args.text:
        return read_texts(args.text, args.n_texts)
    return default_corpus(16 if args.n_texts is None else args.n_texts)  # (--n-texts 0 silently meant 16)


def _print_table(rows, keys=None, out=sys.stdout):
    from .report.document import format_number

    if not rows:
        return
    keys = keys or list(rows[0])
    cells = [[str(k) for k in keys]] + [[format_number(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    for j, c in enumerate(cells):
        print("  ".join(s.rjust(w) for s, w in zip(c, widths)), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _cmd_analyze(args) -> int:
    from .models import load_model
    from .report.analyze import analyze

    t0 = time.perf_counter()
    model = load_model(args.model, max_length=args.max_length)
    texts = _texts(args)
    res = analyze(model, texts, args.out, eps=args.eps, max_length=args.max_length,
                  progress=_progress_factory(args.quiet))
    print(f"tropix analyze: {model.source} ({model.config.arch}, {model.config.n_layers} layers x "
          f"{model.config.n_heads} heads), {len(texts)} texts, eps = {args.eps:g}")
    _print_table(list(res.layers))
    print(f"report: {res.paths['html']}  numbers: {res.paths['json']}  ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_compress(args) -> int:
    from .models import load_model
    from .report.compress_report import compress_and_report

    t0 = time.perf_counter()
    model = load_model(args.model, max_length=args.max_length)
    texts = _texts(args)
    res = compress_and_report(model, texts, args.out, methods=args.method, eps=args.eps, ratio=args.ratio,
                              max_length=args.max_length, progress=_progress_factory(args.quiet))
    print(f"tropix compress: {model.source}, methods {', '.join(res.methods)}, {len(texts)} texts")
    _print_table(list(res.rows), ["method", "setting", "param_ratio", "weight_rel_err", "score_rel_err",
                                  "output_rel_err", "cosine_mean", "cosine_min", "svd_cosine_at_equal_params"])
    if res.best:
        b = res.best
        print(f"best training-free point: {b['method']} ({b['setting']}) at parameter ratio {b['param_ratio']:.3f} "
              f"with mean embedding cosine {b['cosine_mean']:.4f}; saved to {res.saved}")
    print(f"report: {res.paths['html']}  numbers: {res.paths['json']}  ({time.perf_counter() - t0:.0f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tropix`` command."""
    from . import __version__

    p = argparse.ArgumentParser(prog="tropix", description="Tropical analysis and compression of attention in real transformers.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")

    def common(sp, out_default):
        sp.add_argument("--model", default=None,
                        help="model directory, .safetensors file, or 'all-MiniLM-L6-v2' (the embedded default)")
        sp.add_argument("--text", default=None, help="UTF-8 text file (passages = blank-line separated paragraphs); "
                                                      "default: Python's pydoc_data.topics")
        sp.add_argument("--out", default=out_default, help=f"output directory (default {out_default})")
        sp.add_argument("--n-texts", type=int, default=None, help="number of passages to use (default 16 for the "
                                                                   "built-in corpus, all of a --text file)")
        sp.add_argument("--max-length", type=int, default=128, help="tokens per passage (default 128)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    a = sub.add_parser("analyze", help="tropical analysis of every attention head -> HTML + PNG + JSON report")
    common(a, "tropix-report")
    a.add_argument("--eps", type=float, default=0.01, help="mass tolerance (default 0.01)")
    a.set_defaults(func=_cmd_analyze)

    c = sub.add_parser("compress", help="training-free compression of the attention weights -> safetensors + report")
    common(c, "tropix-compressed")
    c.add_argument("--method", action="append", default=None,
                   choices=["svd", "tt", "tucker", "tt-heads", "bilinear", "all"],
                   help="compression method (repeatable; default all)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--eps", type=float, default=None, help="relative Frobenius tolerance per compressed tensor")
    g.add_argument("--ratio", type=float, default=None, help="target parameter ratio (compressed / original)")
    c.set_defaults(func=_cmd_compress)
    p.set_defaults(_version=__version__)
    return p


def main(argv=None) -> int:
    """Entry point of ``tropix`` / ``python -m tropix``; returns the exit status."""
    from .errors import TropixError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"tropix {args._version}")
        return 0
    if not args.command:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (TropixError, OSError) as err:  # OSError: missing, unreadable or clashing paths (FileExistsError for --out)
        msg = str(err) or type(err).__name__
        print(f"tropix: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("tropix: interrupted", file=sys.stderr)
        return 130
