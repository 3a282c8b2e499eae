"""Adversarial audit of tropix.models and the ``tropix`` command: hostile model directories and texts give one-line
errors (specific tropix exceptions from the API), and the numbers of report.json are recomputed independently
from the extracted Q/K of one head."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from tropix.cli import main
from tropix.errors import ArgumentTypeError, EmptyInputError, ShapeError
from tropix.models import ModelNotFoundError, UnsupportedModelError, default_model_path, extract, load_model
from tropix.models.corpus import read_texts

TEXT = (
    "Tropical geometry replaces addition by maximum and multiplication by addition, so polynomials become "
    "piecewise linear.\n\n"
    "A softmax over attention scores tends to a maximum as the temperature goes to zero; the argmax cells of "
    "the keys tile the query space."
)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT (hidden 8, 2 heads) saved as safetensors, with the MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    hf = BertModel(BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                              vocab_size=30522, max_position_embeddings=64)).eval()
    hf.save_pretrained(d, safe_serialization=True)
    shutil.copy(default_model_path() / "tokenizer.json", d / "tokenizer.json")
    load_model(d)  # the pristine copy loads
    return d


def _variant(src, dst, config=None, tensors=None, tokenizer=None):
    """A copy of the model at ``src`` with edited config entries / tensors / tokenizer text."""
    from safetensors.torch import load_file, save_file

    dst.mkdir()
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(config or {})
    (dst / "config.json").write_text(json.dumps(cfg))
    sd = load_file(str(src / "model.safetensors"))
    for name, val in (tensors or {}).items():
        key = next(k for k in sd if k.endswith(name))
        if val is None:
            del sd[key]
        else:
            sd[key] = val
    save_file(sd, str(dst / "model.safetensors"))
    if tokenizer is None:
        shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    else:
        (dst / "tokenizer.json").write_text(tokenizer)
    return dst


# (config edits, tensor edits, tokenizer text, expected error, message fragment); every case but the last two failed
# before this audit (raw ZeroDivisionError / ValueError / TypeError / torch RuntimeError / tokenizers' bare Exception
# tracebacks, or a model that loaded and failed later)
HOSTILE = {
    "zero-heads": ({"num_attention_heads": 0}, None, None, UnsupportedModelError, "malformed bert"),
    "string-width": ({"hidden_size": "abc"}, None, None, UnsupportedModelError, "malformed bert"),
    "null-layers": ({"num_hidden_layers": None}, None, None, UnsupportedModelError, "malformed bert"),
    "negative-vocab": ({"vocab_size": -3}, None, None, UnsupportedModelError, "vocab_size must be at least 1"),
    "wrong-key-shape": (None, {"layer.1.attention.self.key.weight": torch.zeros(8, 5)}, None,
                        UnsupportedModelError, "do not fit"),
    "wrong-ffn-shape": (None, {"layer.0.intermediate.dense.weight": torch.zeros(16, 3)}, None,
                        UnsupportedModelError, "do not fit"),
    "wrong-embeddings": (None, {"embeddings.word_embeddings.weight": torch.zeros(30522, 6)}, None,
                         UnsupportedModelError, "do not fit"),
    "bad-tokenizer": (None, None, "{not json", UnsupportedModelError, "cannot read the tokenizer"),
    "missing-tensor": (None, {"layer.1.attention.self.value.bias": None}, None, UnsupportedModelError,
                       "missing tensor"),
    "wrong-query-shape": (None, {"layer.0.attention.self.query.weight": torch.zeros(3, 8)}, None,
                          UnsupportedModelError, "attention weights have shape"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_directories(tiny_bert, tmp_path, capsys, case):
    cfg, tens, tok, err, frag = HOSTILE[case]
    d = _variant(tiny_bert, tmp_path / case, cfg, tens, tok)
    with pytest.raises(err, match=frag):
        load_model(d)
    capsys.readouterr()
    assert main(["analyze", "--model", str(d), "--out", str(tmp_path / "o"), "--quiet", "--n-texts", "1"]) == 2
    msg = capsys.readouterr().err.strip()
    assert msg.startswith("tropix: error:") and "\n" not in msg and frag in msg


def test_truncated_and_pickled_and_missing(tiny_bert, tmp_path):
    d = tmp_path / "trunc"
    d.mkdir()
    shutil.copy(tiny_bert / "config.json", d)
    (d / "model.safetensors").write_bytes((tiny_bert / "model.safetensors").read_bytes()[:3000])
    with pytest.raises(UnsupportedModelError, match="cannot read safetensors"):
        load_model(d)
    p = tmp_path / "pickled"
    p.mkdir()
    shutil.copy(tiny_bert / "config.json", p)
    (p / "pytorch_model.bin").write_bytes(b"\x80\x04 not unpickled")
    with pytest.raises(ModelNotFoundError, match="never loaded"):
        load_model(p)
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path / "nothing-here")


def test_max_length_and_n_texts_validation(tiny_bert, tmp_path, capsys):
    """Regressions: max_length 0 silently meant 128, max_length 1 silently did not truncate at all (the tokenizer
    cannot cut below its two special tokens: a 300-word text gave 302 tokens), a negative one was a raw
    OverflowError; --n-texts 0 silently meant 16 texts (default corpus) or all passages (--text)."""
    m = load_model(tiny_bert)
    long = "word " * 100
    assert m.encode([long], 2).input_ids.shape == (1, 2)
    assert m.encode([long], np.int64(5)).input_ids.shape == (1, 5)
    for bad in (0, 1, -5, 2.5):
        with pytest.raises(ShapeError):
            m.encode([long], bad)
    with pytest.raises(ShapeError):
        load_model(tiny_bert, max_length=-1)
    txt = tmp_path / "t.txt"
    txt.write_text(TEXT)
    with pytest.raises(ShapeError):
        read_texts(txt, 0)
    assert len(read_texts(txt, None)) == 2 and len(read_texts(txt, 1)) == 1
    for extra in (["--n-texts", "0"], ["--n-texts", "0", "--text", str(txt)], ["--max-length", "1"],
                  ["--max-length", "-5"], ["--max-length", "0"]):
        capsys.readouterr()
        assert main(["analyze", "--model", str(tiny_bert), "--out", str(tmp_path / "o"), "--quiet"] + extra) == 2
        msg = capsys.readouterr().err.strip()
        assert msg.startswith("tropix: error:") and "\n" not in msg


def test_hostile_texts_and_output_paths(tiny_bert, tmp_path, capsys):
    cases = {"nonutf8.txt": b"\xff\xfe bad \x80\x81\n\nmore", "empty.txt": b"", "blank.txt": b"\n \n\n\t\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EmptyInputError):
            read_texts(tmp_path / name)
    (tmp_path / "ok.txt").write_text(TEXT)
    (tmp_path / "a-file").write_text("x")
    runs = [["--text", str(tmp_path / n)] for n in cases] + [["--text", str(tmp_path / "missing.txt")],
                                                            ["--text", str(tmp_path)],
                                                            # --out naming an existing file: was a raw FileExistsError
                                                            ["--text", str(tmp_path / "ok.txt"), "--max-length", "8",
                                                             "--out", str(tmp_path / "a-file")]]
    for extra in runs:
        capsys.readouterr()
        args = ["analyze", "--model", str(tiny_bert), "--quiet", "--out", str(tmp_path / "o")] + extra
        assert main(args) == 2, extra
        msg = capsys.readouterr().err.strip()
        assert msg.startswith("tropix: error:") and "\n" not in msg and "Traceback" not in msg


def test_help_of_every_command():
    for args in ([], ["analyze"], ["compress"]):
        proc = subprocess.run([sys.executable, "-m", "tropix", *args, "--help"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: tropix") and not proc.stderr
    proc = subprocess.run([sys.executable, "-m", "tropix", "bogus"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ report.json against an independent recomputation
def _t_eps(s, eps):
    """Largest T with max softmax(s/T) >= 1-eps, by root finding on the definition (scipy brentq)."""
    s = np.sort(s)[::-1]
    if s.size == 1:
        return math.inf
    if s[0] == s[1]:
        return 0.0 if eps < 0.5 else math.inf  # only used on rows without exact ties in this test

    def f(logT):
        w = np.exp((s - s[0]) / math.exp(logT))
        return 1 / w.sum() - (1 - eps)

    lo, hi = -60.0, 60.0
    if f(hi) >= 0:
        return math.inf
    return math.exp(brentq(f, lo, hi, xtol=1e-13, rtol=1e-13))


def _recompute(ex, L, H, eps):
    """Per-head statistics from the extracted Q/K by direct NumPy loops (allowed keys only)."""
    pmax, ent, margins, sup, supf, temps, special, distinct, largest = ([] for _ in range(9))
    for seq in ex.sequences:
        q = seq.q[L, H].astype(np.float64)
        k = seq.k[L, H].astype(np.float64)
        S = q @ k.T * ex.scale
        win = []
        for i, row in enumerate(S):
            s = row[seq.allowed[i]]
            p = np.exp(s - s.max())
            p /= p.sum()
            pmax.append(p.max())
            ent.append(-(p * np.log(p)).sum())
            srt = np.sort(s)[::-1]
            margins.append(srt[0] - srt[1] if s.size > 1 else math.inf)
            cs = np.cumsum(np.sort(p)[::-1])
            kk = int(np.argmax(cs >= (1 - eps) - 1e-12)) + 1
            sup.append(kk)
            supf.append(kk / s.size)
            temps.append(_t_eps(s, eps))
            j = int(np.argmax(np.where(seq.allowed[i], row, -np.inf)))
            win.append(j)
            special.append(j == 0 or seq.tokens[j] in ("[CLS]", "[SEP]"))
        distinct.append(len(set(win)) / len(win))
        largest.append(max(win.count(j) for j in set(win)) / len(win))
    m = np.array(margins)
    fin = m[np.isfinite(m)]
    t = np.array(temps)
    # extended quantiles of T (inf above every number): the 10th percentile and median of the sorted values
    tq = lambda x: float(np.quantile(np.where(np.isinf(t), 1e300, t), x))  # noqa: E731
    return {
        "n_queries": len(pmax), "mean_max_weight": np.mean(pmax), "mean_entropy": np.mean(ent),
        "margin_median": np.median(fin), "margin_p10": np.quantile(fin, 0.1), "tie_fraction": np.mean(m == 0),
        "support_mean": np.mean(sup), "support_fraction": np.mean(supf),
        "temperature_p10": tq(0.1), "temperature_median": tq(0.5),
        "tropical_at_T1": np.mean(np.array(pmax) >= 1 - eps), "special_token_wins": np.mean(special),
        "distinct_winners_fraction": np.mean(distinct), "largest_cell_share": np.mean(largest),
    }


def _assert_matches(row, ref):
    for key, val in ref.items():
        got = row[key]
        if val >= 1e299:
            assert got == math.inf, key
        else:
            assert abs(got - val) <= 1e-7 * max(1.0, abs(val)), (key, got, val)


def test_report_json_matches_recomputation_for_one_head(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text(TEXT)
    eps, L, H = 0.05, 2, 7
    assert main(["analyze", "--text", str(txt), "--out", str(tmp_path / "out"), "--quiet", "--max-length", "24",
                 "--eps", str(eps)]) == 0
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    row = next(r for r in data["heads"] if r["layer"] == L and r["head"] == H)
    ex = extract(load_model(), read_texts(txt), max_length=24)
    assert data["tokens"] == [s.n for s in ex.sequences]
    _assert_matches(row, _recompute(ex, L, H, eps))
    assert row["sparse_error_max"] <= row["sparse_bound_max"] + 1e-12


def test_causal_head_stats_match_recomputation(tmp_path):
    """GPT-2 (causal): the first query sees one key (margin and T_eps inf), every later one a prefix."""
    from transformers import GPT2Config, GPT2Model

    from tropix.models import head_stats

    torch.manual_seed(3)
    GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=30522, n_positions=64)).save_pretrained(
        tmp_path / "gpt2", safe_serialization=True)
    shutil.copy(default_model_path() / "tokenizer.json", tmp_path / "gpt2" / "tokenizer.json")
    ex = extract(load_model(tmp_path / "gpt2"), [TEXT, "one", "two words here"], max_length=20)
    for eps in (0.01, 0.3):
        _assert_matches(head_stats(ex, 0, 1, eps).as_dict(), _recompute(ex, 0, 1, eps))


# ------------------------------------------------------------------ compressed models
def test_compress_claims_against_recomputation(tiny_bert):
    from tropix.models import compress

    m = load_model(tiny_bert)
    c = compress(m, "svd", eps=0.3)
    att = c.attention()
    n = 0
    for i, a in enumerate(m.attention):
        for key in ("W_Q", "W_K", "W_V", "W_O"):
            W = a[key].double().numpy()
            R = att[i][key].double().numpy()
            err = np.linalg.norm(R - W) / np.linalg.norm(W)
            assert err <= 0.3 + 1e-6 and abs(err - c.rel_errors[f"layer.{i}.{key}"]) <= 1e-5
            n += sum(v.size for k, v in c.tensors.items() if k.startswith(f"layer.{i}.{key}."))
    assert n == c.n_params and c.n_params_original == m.n_attention_params
    # bilinear at a tiny eps keeps every head exactly (biases folded): the model's output is unchanged
    b = compress(m, "bilinear", eps=1e-9)
    batch = m.batch_from_ids([[101, 2000, 2017, 102], [101, 7592, 102]])
    h0, h1 = m.forward(batch).hidden, b.model().forward(batch).hidden
    assert torch.allclose(h0, h1, atol=1e-4)


def test_load_compressed_rejects_malformed_directories(tiny_bert, tmp_path):
    """Regression: a manifest without meta/method/setting, a JSON list, non-UTF-8 text, a truncated or mismatched
    attention.safetensors raised raw KeyError / AttributeError / UnicodeDecodeError / SafetensorError / ValueError."""
    from safetensors.numpy import load_file, save_file

    from tropix.models import compress, load_compressed, save_compressed

    m = load_model(tiny_bert)
    good = save_compressed(compress(m, "svd", eps=0.5), tmp_path / "good", base_model=str(tiny_bert))
    assert load_compressed(good).config.n_layers == 2
    manifest = json.loads((good / "manifest.json").read_text())

    def variant(name, man=None, raw=None, tensors=None):
        d = tmp_path / name
        shutil.copytree(good, d)
        if man is not None:
            (d / "manifest.json").write_text(json.dumps(man))
        if raw is not None:
            (d / "manifest.json").write_bytes(raw)
        if tensors is not None:
            g = load_file(str(d / "attention.safetensors"))
            tensors(g)
            save_file(g, str(d / "attention.safetensors"))
        return d

    cases = [
        variant("no-meta", man={k: v for k, v in manifest.items() if k != "meta"}),
        variant("no-setting", man={k: v for k, v in manifest.items() if k != "setting"}),
        variant("no-method", man=dict(manifest, meta={k: v for k, v in manifest["meta"].items() if k != "method"})),
        variant("list", man=[1, 2]),
        variant("non-utf8", raw=b"\xff\xfe{"),
        variant("missing-tensor", tensors=lambda g: g.pop("layer.1.W_K.A")),
        variant("bad-shape", tensors=lambda g: g.update({"layer.1.W_K.A": np.zeros((5, 3), np.float32)})),
    ]
    t = variant("truncated")
    (t / "attention.safetensors").write_bytes((t / "attention.safetensors").read_bytes()[:500])
    for d in cases + [t]:
        with pytest.raises((UnsupportedModelError, ShapeError)):
            load_compressed(d, base=m)
    with pytest.raises(ModelNotFoundError):
        load_compressed(tmp_path / "nowhere", base=m)


def test_non_string_texts(tiny_bert):
    """Regression: extract([None]) was a raw AttributeError, bytes or ints a TypeError from inside tokenizers."""
    m = load_model(tiny_bert)
    for texts in ([None], [b"bytes"], ["ok", 5]):
        with pytest.raises(ArgumentTypeError, match="must be strings"):  # (a TypeError, as before)
            extract(m, texts)
        with pytest.raises(ArgumentTypeError, match="must be strings"):
            m.encode(texts)
    assert [s.n for s in extract(m, ["\x00\x01\ufffe weird", ""]).sequences][1] == 2


def test_regression_extraction_arguments_of_the_wrong_type(tiny_bert):
    """``extract(batch_size=2.5 / "8" / None)``, ``extract(tol="x")`` and ``head_weights(0.5, 0)`` were raw
    TypeErrors; ``head_weights(True, 0)`` silently returned layer 1."""
    m = load_model(tiny_bert)
    for bs in (2.5, "8", None):
        with pytest.raises(ArgumentTypeError, match="batch_size"):
            extract(m, ["a text"], batch_size=bs)
    with pytest.raises(ArgumentTypeError, match="tol"):
        extract(m, ["a text"], tol="x")
    for layer in (0.5, True):
        with pytest.raises(ArgumentTypeError, match="layer"):
            m.head_weights(layer, 0)
    assert m.head_weights(1, 1)["W_Q"].shape == (8, 4)
