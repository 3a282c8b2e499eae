"""Smoke test of examples/lra_compare.py: a tiny end-to-end run (ListOps and byte-level text from a generated
file) writes a consistent results table."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lra_compare_tiny_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lra_compare", ROOT / "examples" / "lra_compare.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lra_compare", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    rng = random.Random(0)  # a small generated stand-in for IMDb (labels follow a keyword)
    lines = []
    for i in range(60):
        y = i % 2
        words = [rng.choice(["plot", "actor", "scene", "film"]) for _ in range(rng.randint(3, 12))]
        words.insert(rng.randint(0, len(words)), "great" if y else "awful")
        lines.append(f"{y}\t{' '.join(words)}\n")
    text = tmp_path / "reviews.tsv"
    text.write_text("".join(lines))
    out = tmp_path / "out"
    rc = mod.main(["--train", "24", "--val", "12", "--test", "12", "--epochs", "2", "--threads", "1",
                   "--mechanisms", "softmax", "--text-data", str(text), "--out", str(out)])
    assert rc == 0
    tmp_path = out
    res = json.loads((tmp_path / "results.json").read_text())
    assert [(r["task"], r["mechanism"]) for r in res] == [("listops", "softmax"), ("text", "softmax")]
    for r in res:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["best_val_accuracy"] <= 1.0
        assert len(r["train_loss"]) == len(r["val_accuracy"]) == 2
        assert r["best_val_accuracy"] == max(r["val_accuracy"])
        assert 1 <= r["epochs_to_90"] <= 2
        assert r["val_accuracy"][r["epochs_to_90"] - 1] >= 0.9 * r["best_val_accuracy"]
        assert r["seconds_per_epoch"] > 0 and r["params"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| 1 | softmax |" in table and "**listops**" in table and "**text**" in table
    for name in ("curves_listops.png", "radar_listops.png", "heatmap_listops_softmax.png", "curves_text.png",
                 "heatmap_text_softmax.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_text_splits_are_disjoint(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lra_compare", ROOT / "examples" / "lra_compare.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lra_compare", mod)
    spec.loader.exec_module(mod)
    f = tmp_path / "t.tsv"
    f.write_text("".join(f"{i % 2}\treview number {i}\n" for i in range(50)))
    cfg = mod.Config(**{**mod.asdict(mod.SMALL), "train": 30, "val": 8, "test": 7, "text_length": 20})
    (tr, va, te), vocab, ncls = mod.make_text(cfg, str(f))
    rows = [{bytes(r[r > 0] - 1).decode() for r in X.astype("uint8")} for X, _ in (tr, va, te)]
    assert (len(rows[0]), len(rows[1]), len(rows[2])) == (30, 8, 7)
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert (vocab, ncls) == (257, 2)
