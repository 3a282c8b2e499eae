"""The ``tropix`` command end to end on the real embedded model, and its error paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tropix.cli import main

SHORT = (
    "Tropical geometry replaces addition by maximum and multiplication by addition.\n\n"
    "The attention of a transformer is a softmax over scores, and its zero temperature limit is a maximum.\n"
)


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "short.txt").write_text(SHORT)
    code = main(["analyze", "--text", str(d / "short.txt"), "--out", str(d / "out"), "--quiet"])
    return code, d / "out"


def test_analyze_end_to_end(analyzed, capsys):
    code, out = analyzed
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    assert data["extraction_check_max_error"] <= 1e-5
    assert len(data["heads"]) == 72 and len(data["layers"]) == 6
    for row in data["heads"]:
        assert 0 < row["mean_max_weight"] <= 1
        assert 0 < row["support_fraction"] <= 1
        assert row["can_win_fraction"] > 0  # some key always wins
        assert row["sparse_error_max"] <= row["sparse_bound_max"] + 1e-12  # the dropped-mass bound holds
        if "rs_bound_max" in row:
            assert row["rs_error_max"] <= row["rs_bound_max"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(data["figures"]) >= 8
    for name in data["figures"]:
        assert (out / name).stat().st_size > 1000


def test_python_dash_m_and_version():
    proc = subprocess.run([sys.executable, "-m", "tropix", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "tropix 0.1.0"


@pytest.mark.parametrize("case", ["missing-model", "unsupported", "empty-text", "missing-text", "bad-eps"])
def test_user_errors_are_one_line(tmp_path, case):
    args = ["analyze", "--out", str(tmp_path / "o"), "--quiet"]
    if case == "missing-model":
        args += ["--model", str(tmp_path / "none")]
        expect = "no model at"
    elif case == "unsupported":
        (tmp_path / "config.json").write_text('{"model_type": "t5"}')
        (tmp_path / "model.safetensors").write_bytes(b"")
        args += ["--model", str(tmp_path)]
        expect = "'t5'"
    elif case == "empty-text":
        (tmp_path / "e.txt").write_text("\n\n  \n")
        args += ["--text", str(tmp_path / "e.txt")]
        expect = "is empty"
    elif case == "missing-text":
        args += ["--text", str(tmp_path / "nope.txt")]
        expect = "does not exist"
    else:
        args += ["--eps", "2", "--text", str(tmp_path / "t.txt")]
        (tmp_path / "t.txt").write_text("A short text about tropical attention heads.")
        expect = "eps must be in (0, 1)"
    proc = subprocess.run([sys.executable, "-m", "tropix", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tropix: error: ") and expect in proc.stderr


def test_analyze_causal_gpt2_model(tmp_path):
    """The whole analysis on a (tiny, random) GPT-2: causal masks in extraction, statistics and region-sparse."""
    import shutil

    import torch
    from transformers import GPT2Config, GPT2Model

    from tropix.models import default_model_path

    torch.manual_seed(0)
    GPT2Model(GPT2Config(n_embd=32, n_head=4, n_layer=2, vocab_size=30522, n_positions=64)).save_pretrained(
        tmp_path / "gpt2", safe_serialization=True)
    shutil.copy(default_model_path() / "tokenizer.json", tmp_path / "gpt2" / "tokenizer.json")
    (tmp_path / "t.txt").write_text(SHORT)
    code = main(["analyze", "--model", str(tmp_path / "gpt2"), "--text", str(tmp_path / "t.txt"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["arch"] == "gpt2" and len(data["heads"]) == 8
    assert data["extraction_check_max_error"] <= 1e-5
    for row in data["heads"]:
        assert row["sparse_error_max"] <= row["sparse_bound_max"] + 1e-12
        assert row["rs_error_max"] <= row["rs_bound_max"]


def test_text_that_is_a_directory(tmp_path, capsys):
    """Regression: --text DIR said "text file DIR does not exist"."""
    assert main(["analyze", "--text", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "is a directory, not a text file" in capsys.readouterr().err
