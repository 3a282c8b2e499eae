"""Long Range Arena comparison of the attention mechanisms of ``tropix.attention.mechanisms``.

A small pre-LayerNorm transformer encoder (torch, CPU) with a pluggable attention mechanism is trained
on ListOps (generated locally by the seeded reimplementation in ``tropix.attention.mechanisms.lra_data``)
and, when a local copy of IMDb is given, on byte-level text classification.  Conventional softmax
attention is the baseline.  For every mechanism and task it writes to the output directory
(default ``lra-results/``):

* ``results.md`` / ``results.json`` — accuracy, epochs to 90 % of the best validation accuracy, seconds per
  epoch, peak memory;
* ``curves_<task>.png`` — learning curves; ``heatmap_<task>_<mechanism>.png`` — attention of layer 1;
  ``radar_<task>.png`` — a radar chart of accuracy, speed, memory and convergence.

Usage::

    python examples/lra_compare.py               # --small (default): every mechanism on small ListOps
    python examples/lra_compare.py --full        # the LRA ListOps configuration (days on a CPU)
    python examples/lra_compare.py --text-data path/to/aclImdb   # adds byte-level IMDb (1000 bytes; 4000 with --full)
    python examples/lra_compare.py --mechanisms softmax,tropical --epochs 2

Each mechanism runs in its own subprocess so that its peak resident memory (``VmHWM``) is its own; the
reported memory is the peak minus the resident size after the data and model were built.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import queue
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tropix.attention.mechanisms import lra_data  # noqa: E402

ALL_MECHANISMS = ["softmax", "force", "gravitational", "multiscale", "grav_multiscale", "powerlaw", "resonant",
                  "tropical"]

# Published LRA accuracies (Tay et al., ICLR 2021, Table 1) for context.
PUBLISHED = {"Transformer": (36.37, 64.27), "Reformer": (37.27, 56.10), "Performer": (18.01, 65.40),
             "Linear Trans.": (16.13, 65.90), "BigBird": (36.05, 64.02)}


@dataclass
class Config:
    name: str
    train: int
    val: int
    test: int
    min_length: int
    max_length: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    batch: int
    epochs: int
    lr: float
    warmup_steps: int
    text_length: int = 4000
    seed: int = 0


SMALL = Config("small", train=1000, val=400, test=800, min_length=30, max_length=120, d_model=32, n_heads=2,
               n_layers=2, d_ff=64, batch=32, epochs=5, lr=2e-3, warmup_steps=20, text_length=1000)
FULL = Config("full", train=96000, val=2000, test=2000, min_length=500, max_length=2000, d_model=512, n_heads=8,
              n_layers=4, d_ff=1024, batch=32, epochs=2, lr=0.05 / math.sqrt(512), warmup_steps=1000,
              text_length=4000)


@dataclass
class Result:
    mechanism: str
    task: str
    test_accuracy: float
    best_val_accuracy: float
    epochs_to_90: int
    seconds_per_epoch: float
    peak_memory_mb: float
    params: int
    train_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------- data
def make_listops(cfg: Config):
    total = cfg.train + cfg.val + cfg.test
    ex = lra_data.generate_listops(total, seed=cfg.seed, min_length=cfg.min_length, max_length=cfg.max_length)
    tr, va, te = ex[: cfg.train], ex[cfg.train : cfg.train + cfg.val], ex[cfg.train + cfg.val :]
    enc = [lra_data.encode_listops(s, cfg.max_length - 1) for s in (tr, va, te)]
    return [(e.tokens, e.labels) for e in enc], len(lra_data.LISTOPS_VOCAB), 10


def make_text(cfg: Config, path: str):
    """Byte-level text splits from a local copy; train/validation/test are disjoint and shuffled (seeded)."""
    p = Path(path)
    rng = np.random.default_rng(cfg.seed)

    def shuffled(pairs):
        return [pairs[i] for i in rng.permutation(len(pairs))]

    if p.is_dir():  # aclImdb: its own test split (files are sorted pos then neg, hence the shuffles)
        train_pairs = shuffled(lra_data.load_text_dataset(p, "train"))
        test_pairs = shuffled(lra_data.load_text_dataset(p, "test"))[: cfg.test]
    else:  # one file: hold out a test part first
        pairs = shuffled(lra_data.load_text_dataset(p))
        n_test = min(cfg.test, len(pairs) // 5)
        test_pairs, train_pairs = pairs[:n_test], pairs[n_test:]
    n_val = min(cfg.val, len(train_pairs) // 5)
    va, tr = train_pairs[:n_val], train_pairs[n_val : n_val + cfg.train]
    if not (tr and va and test_pairs):
        raise SystemExit(f"{path}: too few labelled texts for train/validation/test splits")
    splits = [lra_data.encode_text_dataset(q, cfg.text_length) for q in (tr, va, test_pairs)]
    return splits, 257, 2


# -------------------------------------------------------------------------------------------- model
def build_model(mechanism: str, vocab: int, n_classes: int, cfg: Config, max_len: int):
    import torch
    from torch import nn

    from tropix.attention.mechanisms import build_mechanism

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
            self.attn = build_mechanism(mechanism, cfg.d_model, cfg.n_heads, vocab_size=vocab)
            self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))

        def forward(self, x, key_mask, tokens):
            x = x + self.attn(self.ln1(x), key_mask, tokens)
            return x + self.ff(self.ln2(x))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, cfg.d_model)
            pos = torch.arange(max_len)[:, None] / (10000 ** (torch.arange(0, cfg.d_model, 2) / cfg.d_model))
            pe = torch.zeros(max_len, cfg.d_model)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(pos), torch.cos(pos)
            # the power-law field is a *decoupled* positional encoding: no position in its embeddings
            self.register_buffer("pe", pe if mechanism != "powerlaw" else torch.zeros_like(pe), persistent=False)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg.n_layers)])
            self.ln = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, n_classes)

        def forward(self, tokens):
            key_mask = tokens != 0
            x = self.emb(tokens) + self.pe[: tokens.shape[1]]
            for layer in self.layers:
                x = layer(x, key_mask, tokens)
            m = key_mask[..., None].to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # mean pooling over real tokens
            return self.head(self.ln(pooled))

    return Encoder()


def _rss_mb(field_name: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _trim(tokens):
    """Cut a batch to its longest real sequence (padding columns cost time for nothing)."""
    n = int((tokens != 0).sum(1).max())
    return tokens[:, : max(n, 1)]


def run_one(mechanism: str, task: str, cfg: Config, splits, vocab: int, n_classes: int, out_dir: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = splits
    max_len = Xtr.shape[1]
    model = build_model(mechanism, vocab, n_classes, cfg, max_len)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(Xtr) / cfg.batch)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps) * max(0.05, 1 - s / max(1, total)))
    lossf = torch.nn.CrossEntropyLoss()
    Xtr_t, ytr_t = torch.as_tensor(Xtr), torch.as_tensor(ytr)
    rss0 = _rss_mb("VmRSS")

    def evaluate(X, y):
        model.eval()
        correct = 0
        with torch.no_grad():
            for a in range(0, len(X), 64):
                xb = _trim(torch.as_tensor(X[a : a + 64]))
                correct += int((model(xb).argmax(-1) == torch.as_tensor(y[a : a + 64])).sum())
        return correct / len(X)

    g = torch.Generator().manual_seed(cfg.seed)
    losses, vals, times, best, best_state = [], [], [], -1.0, None
    for ep in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xtr_t), generator=g)
        tot = 0.0
        for a in range(0, len(perm), cfg.batch):
            idx = perm[a : a + cfg.batch]
            xb, yb = _trim(Xtr_t[idx]), ytr_t[idx]
            loss = lossf(model(xb), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{mechanism}: non-finite loss at epoch {ep}")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        times.append(time.perf_counter() - t0)
        losses.append(tot / len(Xtr_t))
        vals.append(evaluate(Xva, yva))
        if vals[-1] > best:
            best = vals[-1]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        print(f"  {task:8s} {mechanism:16s} epoch {ep + 1}/{cfg.epochs}: loss {losses[-1]:.4f} "
              f"val {vals[-1]:.3f} ({times[-1]:.1f}s)", flush=True)
    model.load_state_dict(best_state)
    test_acc = evaluate(Xte, yte)
    ep90 = next(i + 1 for i, v in enumerate(vals) if v >= 0.9 * best)
    peak = _rss_mb("VmHWM") - rss0

    # attention heatmap of layer 1 on the first validation example
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        attn = model.layers[0].attn
        attn.keep_weights = True
        xb = _trim(torch.as_tensor(Xva[:1]))
        with torch.no_grad():
            model(xb)
        W = attn.last_weights[0].numpy()
        fig, ax = plt.subplots(figsize=(4, 3.4))
        im = ax.imshow(W, cmap="viridis", aspect="auto")
        ax.set_title(f"{mechanism} ({task}), layer 1 head 1" + (" scores" if mechanism == "tropical" else ""),
                     fontsize=8)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(Path(out_dir) / f"heatmap_{task}_{mechanism}.png", dpi=90)
        plt.close(fig)
    except Exception as err:  # plots are optional; numbers are not
        print(f"  (no heatmap for {mechanism}: {err})")
    return Result(mechanism, task, test_acc, best, ep90, float(np.mean(times)), peak, n_params, losses, vals)


def _child(args, q):
    try:
        q.put(("ok", asdict(run_one(*args))))
    except Exception as err:  # report, do not hang the parent
        import traceback

        q.put(("error", f"{err}\n{traceback.format_exc()}"))


def run_isolated(*args):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(args, q))
    p.start()
    while True:  # (a child killed without reporting, by a segfault or the OOM killer, would block q.get forever)
        try:
            status, payload = q.get(timeout=5.0)
            break
        except queue.Empty:
            if not p.is_alive() and q.empty():
                raise RuntimeError(f"the child process died without a result (exit code {p.exitcode})") from None
    p.join()
    if status != "ok":
        raise RuntimeError(payload)
    return Result(**payload)


# ------------------------------------------------------------------------------------------ outputs
def write_outputs(results: list[Result], out: Path, cfg: Config, wall: float, command: str, majority=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    lines = [f"Command: `{command}` (config `{cfg.name}`; wall time {wall / 60:.1f} min)", ""]
    for task in sorted({r.task for r in results}):
        rs = sorted((r for r in results if r.task == task), key=lambda r: -r.test_accuracy)
        maj = (majority or {}).get(task)
        lines += [f"**{task}**" + (f" (majority class of the test split: {100 * maj:.1f} %)" if maj else ""), "",
                  "| rank | mechanism | test acc. (%) | best val. acc. (%) | epochs to 90 % of best | s / epoch "
                  "| peak memory (MB) | parameters |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for i, r in enumerate(rs):
            lines.append(f"| {i + 1} | {r.mechanism} | {100 * r.test_accuracy:.1f} | {100 * r.best_val_accuracy:.1f} "
                         f"| {r.epochs_to_90} | {r.seconds_per_epoch:.1f} | {r.peak_memory_mb:.0f} | {r.params} |")
        lines.append("")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        for r in rs:
            ep = range(1, len(r.train_loss) + 1)
            a1.plot(ep, r.train_loss, label=r.mechanism)
            a2.plot(ep, [100 * v for v in r.val_accuracy], label=r.mechanism)
        a1.set(xlabel="epoch", ylabel="train loss", title=f"{task}: training loss")
        a2.set(xlabel="epoch", ylabel="val. accuracy (%)", title=f"{task}: validation accuracy")
        a2.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"curves_{task}.png", dpi=90)
        plt.close(fig)
        # radar chart: every axis scaled so that the best mechanism is 1
        axes = ["accuracy", "speed", "memory", "convergence"]
        acc = np.array([r.test_accuracy for r in rs])
        spd = np.array([1 / r.seconds_per_epoch for r in rs])
        mem = np.array([1 / max(r.peak_memory_mb, 1.0) for r in rs])
        cnv = np.array([1 / r.epochs_to_90 for r in rs])
        vals = np.stack([acc / acc.max(), spd / spd.max(), mem / mem.max(), cnv / cnv.max()], 1)
        ang = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
        fig = plt.figure(figsize=(5, 5))
        ax = fig.add_subplot(111, polar=True)
        for r, v in zip(rs, vals):
            ax.plot(np.r_[ang, ang[:1]], np.r_[v, v[:1]], label=r.mechanism)
        ax.set_xticks(ang)
        ax.set_xticklabels(axes)
        ax.set_title(f"{task} (1 = best of the run)", fontsize=9)
        ax.legend(fontsize=6, loc="lower left", bbox_to_anchor=(0.9, 0.0))
        fig.tight_layout()
        fig.savefig(out / f"radar_{task}.png", dpi=90)
        plt.close(fig)
    lines += ["Published LRA accuracies for context (Tay et al. 2021, full configuration): "
              + ", ".join(f"{k} {v[0]:.2f} / {v[1]:.2f}" for k, v in PUBLISHED.items()) + " (ListOps / Text)."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--small", action="store_true", help="small ListOps run, under 30 min on 2 CPU cores (default)")
    g.add_argument("--full", action="store_true", help="the LRA configuration")
    ap.add_argument("--mechanisms", default=",".join(ALL_MECHANISMS))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train", type=int, default=None, help="number of training examples")
    ap.add_argument("--val", type=int, default=None, help="number of validation examples")
    ap.add_argument("--test", type=int, default=None, help="number of test examples")
    ap.add_argument("--text-data", default=None, help="local IMDb copy (aclImdb dir, .tsv or .jsonl)")
    ap.add_argument("--out", default="lra-results")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = FULL if args.full else SMALL
    cfg = Config(**{**asdict(cfg), "seed": args.seed})
    if args.epochs:
        cfg.epochs = args.epochs
    for name in ("train", "val", "test"):
        if getattr(args, name):
            setattr(cfg, name, getattr(args, name))
    mechs = [m.strip() for m in args.mechanisms.split(",") if m.strip()]
    bad = [m for m in mechs if m not in ALL_MECHANISMS]
    if bad:
        ap.error(f"unknown mechanism(s) {bad}; choose from {ALL_MECHANISMS}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tasks = [("listops", *make_listops(cfg))]
    print(f"ListOps: {cfg.train}/{cfg.val}/{cfg.test} examples, lengths in ({cfg.min_length}, {cfg.max_length}), "
          f"generated in {time.perf_counter() - t0:.1f}s", flush=True)
    if args.text_data:
        tasks.append(("text", *make_text(cfg, args.text_data)))
    else:
        print("Text (IMDb): no local copy given (--text-data); skipped", flush=True)
    results = []
    for task, splits, vocab, ncls in tasks:
        for m in mechs:
            results.append(run_isolated(m, task, cfg, splits, vocab, ncls, str(out), args.threads))
    wall = time.perf_counter() - t0
    command = "python examples/lra_compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    majority = {task: float(np.bincount(splits[2][1]).max() / len(splits[2][1])) for task, splits, _, _ in tasks}
    write_outputs(results, out, cfg, wall, command.strip(), majority)
    return 0


if __name__ == "__main__":
    sys.exit(main())
