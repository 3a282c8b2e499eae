"""Benchmark of tropix.tn against quimb, tensorly, teneva and sesum on the same inputs in the same run.

Prints three tables of wall-clock ratios (time / tropix time; < 1 means the other library is faster),
with the achieved maximal rank, parameter count and relative Frobenius error side by side:

1. TT-SVD of 4^10 tensors at eps = 1e-1 and 1e-2.
2. TT-matrix compression of 384×384 and 1536×384 matrices at eps = 1e-1 and 1e-2.
3. Max-plus/min-plus contraction of ±J spin glasses on L×L lattices (L = 8, 12, 16) against sesum's
   max-plus einsum and a plain NumPy boundary dynamic programme.

The competitors are NOT tropix dependencies.  They live in ``benchmarks/.venv-tn`` (create it with
``python benchmarks/bench_tn.py --make-venv``); when the running interpreter lacks them and that venv
exists, the script re-executes itself there (with this checkout on ``PYTHONPATH``).  Missing packages
give "not installed" rows.  ``--quick`` runs one repeat and L ≤ 12; ``--spin-glass-only`` runs table 3 only.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

# Single-threaded BLAS by default (``--threads N`` to change), set before NumPy is imported: on a shared
# 2-core machine multi-threaded OpenBLAS spins and small SVDs/QRs become 20-50x slower, for every library.
_THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = _THREADS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-tn"
COMPETITORS = ["quimb", "tensorly", "teneva", "sesum"]


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def _maybe_reexec() -> None:
    py = VENV / "bin" / "python"
    if "--no-reexec" in sys.argv or all(_have(m) for m in COMPETITORS) or not py.exists():
        return
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"(re-running under {py} where the competitors are installed)", flush=True)
    sys.exit(subprocess.call([str(py), __file__, "--no-reexec", *sys.argv[1:]], env=env))


def _make_venv() -> None:
    subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    pkgs = ["numpy", "scipy", "sympy", "networkx", "opt_einsum", "array-api-compat", "numba", *COMPETITORS]
    subprocess.check_call([str(VENV / "bin" / "pip"), "install", "-q", *pkgs])


sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REPEATS = 1 if "--quick" in sys.argv else 3


def best_time(fn):
    out, best = None, float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def row(name, t, t_ref, rank="", params="", err="", note=""):
    if t is None:
        print(f"  {name:<28s} {'not installed':>10s}")
        return
    ratio = t / t_ref if t_ref else float("nan")
    r = f"{rank:>5}" if rank != "" else "     "
    p = f"{params:>9}" if params != "" else "         "
    e = f"{err:9.2e}" if err != "" else "         "
    print(f"  {name:<28s} {t * 1e3:9.1f} ms {ratio:7.2f}x  rank {r}  params {p}  rel.err {e}  {note}")


# -- 1. TT-SVD ---------------------------------------------------------------------------------------
def tt_inputs():
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, 4)
    grids = np.meshgrid(*([x] * 10), indexing="ij", sparse=True)
    smooth = 1.0 / (1.0 + sum(grids))
    from tropix.tn import TensorTrain

    lowrank = TensorTrain.random((4,) * 10, rank=6, seed=1).to_dense()
    lowrank = lowrank / np.linalg.norm(lowrank) + 3e-3 * rng.standard_normal(lowrank.shape) / 1024
    return {"1/(1+Σx) on 4^10 grid": smooth, "rank-6 TT + noise, 4^10": lowrank}


def rel_err(approx, A):
    return float(np.linalg.norm(approx - A) / np.linalg.norm(A))


def bench_tt_svd():
    from tropix.tn import tt_svd

    print("\n== TT-SVD of 4^10 tensors (time ratio vs tropix; rank = max TT rank) ==")
    for label, A in tt_inputs().items():
        for eps in (1e-1, 1e-2):
            print(f"- {label}, eps = {eps:g}")
            t0, tt = best_time(lambda: tt_svd(A, eps=eps))
            row("tropix.tn.tt_svd", t0, t0, max(tt.ranks), tt.n_params, rel_err(tt.to_dense(), A),
                f"certified bound {tt.error_bound / np.linalg.norm(A):.2e}")
            if _have("teneva"):
                import teneva

                t, Y = best_time(lambda: teneva.svd(A, e=eps))
                row("teneva.svd", t, t0, max(max(c.shape[0], c.shape[2]) for c in Y), sum(c.size for c in Y),
                    rel_err(teneva.full(Y), A))
            else:
                row("teneva.svd", None, t0)
            if _have("quimb"):
                import quimb.tensor as qtn

                cut = eps**2 / (A.ndim - 1)
                t, mps = best_time(lambda: qtn.MatrixProductState.from_dense(A, dims=[4] * 10, cutoff=cut,
                                                                             cutoff_mode="rsum2"))
                dense = mps.to_dense().reshape(A.shape)
                row("quimb MPS.from_dense", t, t0, mps.max_bond(), sum(x.size for x in mps.arrays), rel_err(dense, A),
                    "cutoff=eps²/(d-1), rsum2")
            else:
                row("quimb MPS.from_dense", None, t0)
            if _have("tensorly"):
                import tensorly as tl
                from tensorly.decomposition import tensor_train

                t, fac = best_time(lambda: tensor_train(A, rank=list(tt.ranks)))
                row("tensorly.tensor_train", t, t0, max(fac.rank), sum(f.size for f in fac.factors),
                    rel_err(tl.tt_to_tensor(fac), A), "given tropix's ranks (no eps option)")
            else:
                row("tensorly.tensor_train", None, t0)


# -- 2. TT-matrix --------------------------------------------------------------------------------------
def tt_matrices():
    rng = np.random.default_rng(2)
    out = {}
    for M, N in ((384, 384), (1536, 384)):
        x = np.sort(rng.random(M))
        y = np.sort(rng.random(N))
        W = 1.0 / (1.0 + 20.0 * np.abs(x[:, None] - y[None, :])) + 1e-3 * rng.standard_normal((M, N))
        out[(M, N)] = W
    return out


def bench_ttmatrix():
    from tropix.tn import TTMatrix, factorize

    print("\n== TT-matrix compression (smooth kernel + 1e-3 noise); time ratio vs tropix ==")
    for (M, N), W in tt_matrices().items():
        rd, cd = factorize(M, 4), factorize(N, 4)
        for eps in (1e-1, 1e-2):
            print(f"- {M}×{N}, row dims {rd}, col dims {cd}, eps = {eps:g}")
            t0, T = best_time(lambda: TTMatrix.from_dense(W, rd, cd, eps=eps))
            row("tropix TTMatrix.from_dense", t0, t0, max(T.ranks), T.n_params, rel_err(T.to_dense(), W),
                f"dense {M * N} params")
            ta, Ta = best_time(lambda: TTMatrix.from_dense(W, eps=eps))
            row("  (automatic factorisation)", ta, t0, max(Ta.ranks), Ta.n_params, rel_err(Ta.to_dense(), W),
                f"dims {Ta.row_dims}×{Ta.col_dims}")
            d = len(rd)
            T4 = W.reshape(rd + cd).transpose([x for k in range(d) for x in (k, d + k)]).reshape(
                [m * n for m, n in zip(rd, cd)])
            if _have("teneva"):
                import teneva

                t, Y = best_time(lambda: teneva.svd(W.reshape(rd + cd).transpose(
                    [x for k in range(d) for x in (k, d + k)]).reshape([m * n for m, n in zip(rd, cd)]), e=eps))
                row("teneva.svd (interleaved)", t, t0, max(max(c.shape[0], c.shape[2]) for c in Y),
                    sum(c.size for c in Y), rel_err(teneva.full(Y), T4))
            else:
                row("teneva.svd (interleaved)", None, t0)
            if _have("quimb"):
                import quimb.tensor as qtn

                if M == N:
                    cut = eps**2 / (d - 1)
                    t, mpo = best_time(lambda: qtn.MatrixProductOperator.from_dense(
                        W, dims=list(rd), cutoff=cut, cutoff_mode="rsum2"))
                    dense = mpo.to_dense()
                    row("quimb MPO.from_dense", t, t0, mpo.max_bond(), sum(x.size for x in mpo.arrays),
                        rel_err(np.asarray(dense).reshape(M, N), W))
                else:
                    cut = eps**2 / (d - 1)
                    t, mps = best_time(lambda: qtn.MatrixProductState.from_dense(
                        T4, dims=list(T4.shape), cutoff=cut, cutoff_mode="rsum2"))
                    row("quimb MPS (interleaved)", t, t0, mps.max_bond(), sum(x.size for x in mps.arrays),
                        rel_err(mps.to_dense().reshape(T4.shape), T4), "MPO.from_dense needs square")
            else:
                row("quimb MPO.from_dense", None, t0)
            if _have("tensorly"):
                import tensorly as tl
                from tensorly.decomposition import tensor_train_matrix

                Wt = W.reshape(rd + cd)
                t, fac = best_time(lambda: tensor_train_matrix(Wt, rank=list(T.ranks)))
                row("tensorly.tensor_train_matrix", t, t0, max(fac.rank), sum(f.size for f in fac.factors),
                    rel_err(tl.tt_matrix_to_tensor(fac).reshape(M, N), W), "given tropix's ranks")
            else:
                row("tensorly.tensor_train_matrix", None, t0)


# -- 3. spin glasses ----------------------------------------------------------------------------------
def numpy_boundary_dp(Jh, Jv):
    """Plain NumPy min-plus boundary DP over a sliding window of L spins (row-major order)."""
    L, M = Jh.shape[0], Jv.shape[1]
    sig = np.array([-1.0, 1.0])
    E = np.zeros((1,))  # window of the spins visited so far (at most M of them)
    width = 0
    for r in range(L):
        for c in range(M):
            # window axes: oldest first; the spin above is the oldest when width == M
            add = np.zeros((2,) * width + (2,))
            if c > 0:
                shp = [1] * width + [2]
                shp[width - 1] = 2
                add = add + (-Jh[r, c - 1] * np.outer(sig, sig)).reshape(shp)
            if r > 0:
                shp = [1] * (width + 1)
                shp[0] = 2
                shp[-1] = 2
                add = add + (-Jv[r - 1, c] * np.outer(sig, sig)).reshape(shp)
            E = E.reshape((2,) * width + (1,)) + add
            if width == M:
                E = E.min(axis=0)
            else:
                width += 1
    return float(E.min())


def bench_spin_glass() -> bool:
    """The spin-glass tables; whether every method found the same ground-state energy for every size."""
    import importlib

    from tropix import MinPlus
    from tropix.tn import contract
    from tropix.tn.problems import random_couplings, spin_glass_network

    cmod = importlib.import_module("tropix.tn.contract")
    sizes = (8, 12) if "--quick" in sys.argv else (8, 12, 16)
    agree = True
    print("\n== ±J spin-glass ground states (tropical contraction); time ratio vs tropix ==")
    print("   (every method runs once untimed first: numba compilation/cache loading and tropix's plan cache)")
    for L in sizes:
        Jh, Jv = random_couplings(L, seed=100 + L)
        sub, ops, path = spin_glass_network(Jh, Jv)
        print(f"- L = {L} ({L * L} spins, {len(ops)} bond tensors)")

        def timed(fn):
            fn()  # untimed warm-up
            return best_time(fn)

        t0, e0 = timed(lambda: contract(sub, *ops, semiring=MinPlus, optimize=path))
        row("tropix contract (row path)", t0, t0, note=f"E0 = {e0:g}")

        def fresh():
            cmod._PLANS.clear()
            return contract(sub, *ops, semiring=MinPlus, optimize=path)

        tf, ef = timed(fresh)
        row("  plan rebuilt every call", tf, t0, note=f"E0 = {ef:g}")
        tc, (ec, cnt) = timed(lambda: contract(sub, *ops, semiring=MinPlus, optimize=path, count=True))
        row("tropix contract, count=True", tc, t0, note=f"E0 = {ec:g}, degeneracy {cnt:g}")
        ta, (ea, conf) = timed(lambda: contract(sub, *ops, semiring=MinPlus, optimize=path, assignment=True))
        row("tropix contract, assignment", ta, t0, note=f"E0 = {ea:g}, {len(conf)} spins assigned")

        def generic():
            cmod.FAST_PATH = False
            try:
                return contract(sub, *ops, semiring=MinPlus, optimize=path)
            finally:
                cmod.FAST_PATH = True

        tg0, eg0 = timed(generic)
        row("tropix generic path (NumPy)", tg0, t0, note=f"E0 = {eg0:g}; the array-API path, pre-fast-path")
        tn, en = timed(lambda: numpy_boundary_dp(Jh, Jv))
        row("plain NumPy boundary DP", tn, t0, note=f"E0 = {en:g}")
        if _have("sesum"):
            import sesum as sr

            neg = [-o for o in ops]  # max-plus of -E
            ts, es = timed(lambda: -float(sr.sesum(sub, *neg, path=path, semiring=sr.max_plus)))
            row("sesum max_plus (same path)", ts, t0, note=f"E0 = {es:g}")
            tp, (spath, _, _) = best_time(lambda: sr.compute_path(sub, *neg, seed=0, algorithm="greedy"))
            ts2, es2 = timed(lambda: -float(sr.sesum(sub, *neg, path=spath, semiring=sr.max_plus)))
            row("sesum max_plus (own path)", ts2, t0, note=f"E0 = {es2:g}; path search {tp * 1e3:.0f} ms extra")
        else:
            row("sesum max_plus", None, t0)
        energies = [e0, ef, ec, ea, eg0, en] + ([es, es2] if _have("sesum") else [])
        if L <= 8:
            tg, eg = timed(lambda: contract(sub, *ops, semiring=MinPlus, optimize="greedy"))
            row("tropix, opt_einsum greedy path", tg, t0, note=f"E0 = {eg:g}")
            energies.append(eg)
        if len({float(e) for e in energies}) != 1:  # (integer energies: every method must find the same one)
            print(f"  MISMATCH: the ground-state energies differ: {sorted({float(e) for e in energies})}")
            agree = False
    return agree


def main() -> int:
    if "--make-venv" in sys.argv:
        _make_venv()
        return 0
    _maybe_reexec()
    import numpy

    print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, repeats {REPEATS} (best of), "
          f"BLAS threads {_THREADS}")
    for m in COMPETITORS:
        if _have(m):
            mod = __import__(m)
            print(f"  {m} {getattr(mod, '__version__', '?')}")
        else:
            print(f"  {m}: not installed")
    if "--spin-glass-only" not in sys.argv:
        bench_tt_svd()
        bench_ttmatrix()
    return 0 if bench_spin_glass() else 1


if __name__ == "__main__":
    sys.exit(main())
