"""Validate every tropix.attention method against dense attention; exit non-zero on any failure.

Checks, on synthetic inputs (peaked clustered keys at several temperatures, i.i.d. Gaussian keys, masks,
biases, causal masks, batched heads, ties) and on real queries/keys of all-MiniLM-L6-v2 (a few passages;
skipped with a note if the model cannot be loaded):

* ``dense`` equals textbook softmax attention and torch's ``scaled_dot_product_attention``;
* ``tropical`` equals the zero-temperature limit of dense attention;
* ``region_sparse``, ``hierarchical``, ``auto``, ``screened`` and ``tt_compressed`` stay within their certified bounds,
  their bounds never exceed the request ``eps * max|v|`` (above the rounding floor), and ``eps = 0`` gives
  dense attention to rounding.

Prints one line per check with the worst error / bound ratio and the median certified support.
Usage: ``python examples/attention_validation.py [--no-real]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tropix.attention import (  # noqa: E402
    auto,
    build_key_tree,
    compress_projections,
    dense,
    hierarchical,
    region_sparse,
    screened,
    tropical,
    tt_compressed,
)

FAILURES: list[str] = []


def report(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name:<48s} {detail}")
    if not ok:
        FAILURES.append(name)


def naive(q, k, v, mask=None, bias=None, scale=None, causal=False):
    s = (q @ np.swapaxes(k, -1, -2)) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if bias is not None:
        s = s + bias
    keep = np.ones(s.shape, dtype=bool)
    if mask is not None:
        keep &= np.broadcast_to(mask, s.shape)
    if causal:
        keep &= np.tril(np.ones(s.shape[-2:], dtype=bool))
    s = np.where(keep, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    w = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    z = w.sum(axis=-1, keepdims=True)
    return (w @ v) / np.where(z > 0, z, 1.0)


def check_certified(name, q, k, v, eps, **kw):
    ref = dense(q, k, v, **{a: b for a, b in kw.items() if a != "tree"})
    vmax = np.max(np.linalg.norm(v, axis=-1), axis=-1)[..., None]
    for mname, fn in (("region_sparse", region_sparse), ("hierarchical", hierarchical), ("auto", auto),
                      ("screened", screened)):
        r = fn(q, k, v, eps=eps, **({a: b for a, b in kw.items() if a != "tree"} if mname == "screened" else kw))
        err = np.linalg.norm(np.asarray(r.output) - ref, axis=-1)
        within = bool(np.all(err <= r.bound + r.reference_slack))
        capped = bool(np.all((r.bound <= eps * vmax * (1 + 1e-12)) | (r.bound <= 4 * r.reference_slack)))
        ratio = float(np.max(err / np.maximum(r.bound, 1e-300)))
        report(f"{mname} {name} eps={eps:g}", within and capped,
               f"max err/bound {ratio:.3f}  median support {np.median(r.support):.0f}/{k.shape[-2]}  "
               f"method {r.method}")


def clustered(n, d, nc, rng):
    C = rng.normal(size=(nc, d))
    return C[rng.integers(0, nc, n)] + 0.05 * rng.normal(size=(n, d))


def synthetic() -> None:
    rng = np.random.default_rng(0)
    # dense vs textbook and torch
    q, k, v = rng.normal(size=(2, 3, 33, 16)), rng.normal(size=(2, 3, 70, 16)), rng.normal(size=(2, 3, 70, 8))
    mask = rng.random((33, 70)) > 0.3
    mask[5] = False
    for kw in (dict(), dict(mask=mask), dict(causal=True), dict(bias=rng.normal(size=(3, 1, 70)))):
        err = np.abs(dense(q, k, v, block=16, **kw) - naive(q, k, v, **kw)).max()
        report(f"dense vs textbook {sorted(kw)}", err < 1e-12, f"max abs diff {err:.1e}")
    tq, tk, tv = (torch.tensor(x) for x in (q, k, v))
    err = (dense(tq, tk, tv, causal=True) - torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, is_causal=True)).abs().max().item()
    report("dense vs torch sdpa (causal)", err < 1e-12, f"max abs diff {err:.1e}")
    # tropical limit
    q2, k2, v2 = rng.normal(size=(20, 6)), rng.normal(size=(50, 6)), rng.normal(size=(50, 3))
    err = np.abs(tropical(q2, k2, v2, scale=1.0) - dense(q2, k2, v2, scale=1e7)).max()
    report("tropical = T->0 limit of dense", err < 1e-6, f"max abs diff {err:.1e}")
    # certified methods
    n, d = 6000, 32
    k = clustered(n, d, 96, rng)
    v = rng.normal(size=(n, d))
    tree = build_key_tree(k)
    for T in (1.0, 0.25, 0.1):
        q = clustered(64, d, 96, rng) / T
        for eps in (0.0, 1e-3, 0.05):
            check_certified(f"clustered T={T:g}", q, k, v, eps, tree=tree)
    q = rng.normal(size=(64, d)) / 0.1
    kg = rng.normal(size=(n, d))
    check_certified("gaussian T=0.1", q, kg, v, 1e-3)
    kg2, vg2 = rng.normal(size=(9000, d)), rng.normal(size=(9000, 4))  # enough keys for auto to screen
    check_certified("gaussian T=0.1 n=9000", q, kg2, vg2, 1e-3)
    # a query-dependent additive bias on enough keys for the screen's fused bfloat16 path with a bias tile:
    # ALiBi-like (the score falls with the distance between positions), keys beyond a window masked by -inf
    pos_q, pos_k = np.linspace(0, 8999, 64).round(), np.arange(9000.0)
    alibi = -0.002 * np.abs(pos_q[:, None] - pos_k[None, :])
    alibi[np.abs(pos_q[:, None] - pos_k[None, :]) > 6000] = -np.inf
    check_certified("gaussian T=0.1 n=9000 + ALiBi bias", q, kg2, vg2, 1e-3, bias=alibi)
    qm = rng.normal(size=(40, 8)) * 3
    km, vm = np.round(rng.normal(size=(500, 8))), rng.normal(size=(500, 2))  # many ties
    mask = rng.random((40, 500)) > 0.5
    mask[0] = False
    bias = rng.normal(size=500)
    bias[::5] = -np.inf
    check_certified("ties+mask+bias", qm, km, vm, 1e-3, mask=mask, bias=bias)
    check_certified("causal", qm, km, vm, 1e-2, causal=True)
    # causal self-attention over clustered positions with a prebuilt tree: region_sparse's compiled walk with
    # the causal mask (hidden keys score -inf, leaves wholly after a query carry no mass)
    ks = clustered(2000, d, 64, rng)
    check_certified("clustered T=0.25 causal self-attention n=2000", ks / 0.25, ks, rng.normal(size=(2000, 4)),
                    1e-3, causal=True, tree=build_key_tree(ks))
    qb, kb, vb = rng.normal(size=(2, 2, 16, 8)) * 4, rng.normal(size=(2, 2, 300, 8)), rng.normal(size=(2, 2, 300, 4))
    check_certified("batched heads", qb, kb, vb, 1e-3)
    # TT-compressed projections
    # (Kronecker products are exact at TT rank 1: the small perturbation makes tt_eps = 0.1 really truncate)
    W = [np.kron(rng.normal(size=(8, 4)), rng.normal(size=(12, 8))) / 10 + 0.003 * rng.normal(size=(96, 32))
         for _ in range(3)]
    X = rng.normal(size=(40, 96))
    for tt_eps in (1e-6, 0.1):
        try:
            r = tt_compressed(X, X, compress_projections(*W, eps=tt_eps), weights=W, check=True)
            # here too against dense attention of the exact projections (not only tt_compressed's own check)
            err = np.linalg.norm(np.asarray(r.output) - dense(X @ W[0], X @ W[1], X @ W[2]), axis=-1)
            report(f"tt_compressed tt_eps={tt_eps:g}", bool(np.all(err <= r.bound + r.reference_slack)),
                   f"max err/bound {float(np.max(err / np.maximum(r.bound, 1e-300))):.3f}  max bound "
                   f"{r.bound.max():.2e}  params {r.counters['tt_params']}/{r.counters['dense_params']}")
        except Exception as err:  # noqa: BLE001 - any failure is reported
            report(f"tt_compressed tt_eps={tt_eps:g}", False, repr(err))


def real() -> None:
    from tropix.models import extract, load_model
    from tropix.models.corpus import default_corpus

    try:
        model = load_model()
    except Exception as err:  # noqa: BLE001 - the model is optional for this script (its extraction is not)
        print(f"note: real Q/K skipped ({type(err).__name__}: {err})")
        return
    ex = extract(model, default_corpus(4))
    for layer, head in ((0, 0), (2, 3), (5, 7)):
        q = np.concatenate([s.q[layer, head] for s in ex.sequences]).astype(np.float64)
        k = np.concatenate([s.k[layer, head] for s in ex.sequences]).astype(np.float64)
        v = np.concatenate([s.v[layer, head] for s in ex.sequences]).astype(np.float64)
        for eps in (0.0, 1e-3):
            check_certified(f"MiniLM L{layer}H{head} bank n={k.shape[0]}", q, k, v, eps, scale=ex.scale)


def main(argv) -> int:
    synthetic()
    if "--no-real" not in argv:
        real()
    print(f"\n{len(FAILURES)} failure(s)" + (": " + ", ".join(FAILURES) if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
