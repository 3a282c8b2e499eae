"""Smoke test of examples/lra_compare.py: a tiny end-to-end run writes a consistent results table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lra_compare_tiny_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lra_compare", ROOT / "examples" / "lra_compare.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lra_compare", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    rc = mod.main(["--train", "24", "--val", "12", "--test", "12", "--epochs", "2", "--threads", "1",
                   "--mechanisms", "softmax,tropical", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert [r["mechanism"] for r in res] == ["softmax", "tropical"]
    for r in res:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["best_val_accuracy"] <= 1.0
        assert len(r["train_loss"]) == len(r["val_accuracy"]) == 2
        assert r["best_val_accuracy"] == max(r["val_accuracy"])
        assert 1 <= r["epochs_to_90"] <= 2
        assert r["val_accuracy"][r["epochs_to_90"] - 1] >= 0.9 * r["best_val_accuracy"]
        assert r["seconds_per_epoch"] > 0 and r["params"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| 1 |" in table and "softmax" in table and "tropical" in table
    for name in ("curves_listops.png", "radar_listops.png", "heatmap_listops_softmax.png",
                 "heatmap_listops_tropical.png"):
        assert (tmp_path / name).stat().st_size > 0
