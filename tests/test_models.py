"""tropix.models: the self-written BERT/GPT-2 forward against transformers, extraction checks, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from tropix import BoundViolationError, EmptyInputError, ShapeError
from tropix.models import (
    ModelNotFoundError,
    UnsupportedModelError,
    check_probs,
    default_model_path,
    extract,
    from_transformers,
    load_model,
)
from tropix.models.slices import plane_slice, query_plane

TEXTS = [
    "Tropical geometry replaces addition by maximum.",
    "The quick brown fox jumps over the lazy dog, twice, while the tropical sun sets over the river.",
    "Attention!",
]


@pytest.fixture(scope="module")
def minilm():
    return load_model()


@pytest.fixture(scope="module")
def hf_bert():
    from transformers import BertModel

    return BertModel.from_pretrained(str(default_model_path()), attn_implementation="eager").eval()


# --------------------------------------------------------------------------- agreement with transformers
def test_bert_forward_matches_transformers(minilm, hf_bert):
    batch = minilm.encode(TEXTS)
    assert batch.input_ids.shape[0] == 3 and min(batch.lengths) < max(batch.lengths)  # padding is exercised
    ours = minilm.forward(batch, record=True)
    with torch.no_grad():
        ref = hf_bert(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      output_attentions=True, output_hidden_states=True)
    mask = batch.attention_mask.bool()
    assert torch.allclose(ours.hidden[mask], ref.last_hidden_state[mask], atol=1e-5)
    for layer, rec in enumerate(ours.layers):
        for b, n in enumerate(batch.lengths):
            diff = (rec.probs[b, :, :n, :n] - ref.attentions[layer][b, :, :n, :n]).abs().max()
            assert diff <= 1e-5, (layer, b, float(diff))


def test_tokenizer_matches_transformers(minilm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    batch = minilm.encode(TEXTS)
    for b, text in enumerate(TEXTS):
        assert batch.input_ids[b, : batch.lengths[b]].tolist() == tok(text)["input_ids"]


def test_embeddings_match_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(default_model_path()), device="cpu")
    st_model.max_seq_length = 128
    ref = st_model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    ours = minilm.embed(TEXTS).numpy()
    assert np.abs(ours - ref).max() < 1e-5


def test_extraction_recomputes_model_probabilities(minilm):
    ex = extract(minilm, TEXTS)
    assert ex.max_check_error <= 1e-5
    assert [s.n for s in ex.sequences] == minilm.encode(TEXTS).lengths
    s = ex.sequences[1]
    assert s.q.shape == (6, 12, s.n, 32) and s.probs.shape == (6, 12, s.n, s.n)
    assert np.allclose(s.probs.sum(-1), 1.0, atol=1e-5)
    # tamper with one probability: the check must fail loudly
    bad = s.probs.copy()
    bad[3, 5, 0, 0] += 2e-5
    with pytest.raises(BoundViolationError, match="layer 3 head 5"):
        check_probs(s.q, s.k, bad, s.allowed, ex.scale)


def test_extracted_weights_reproduce_q_and_k(minilm):
    """Q of layer 0 = LayerNorm(embeddings) @ W_Q^h + b_Q^h, for every head (weights as extracted)."""
    batch = minilm.encode(TEXTS[:1])
    from tropix.models.architectures import ARCHITECTURES

    x = ARCHITECTURES["bert"].embed(minilm.state, minilm.config, batch.input_ids, None)[0].numpy().astype(np.float64)
    ex = extract(minilm, TEXTS[:1])
    for h in range(12):
        q = x @ ex.weights["W_Q"][0, h].astype(np.float64) + ex.weights["b_Q"][0, h]
        k = x @ ex.weights["W_K"][0, h].astype(np.float64) + ex.weights["b_K"][0, h]
        assert np.abs(q - ex.sequences[0].q[0, h]).max() < 1e-4
        assert np.abs(k - ex.sequences[0].k[0, h]).max() < 1e-4


# --------------------------------------------------------------------------- GPT-2 (tiny random, saved as safetensors)
@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=32, n_head=4, n_layer=2, vocab_size=101, n_positions=64)
    cfg._attn_implementation = "eager"  # so that output_attentions returns the probabilities
    hf = GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(path, safe_serialization=True)
    return path, hf


def test_gpt2_forward_matches_transformers(tiny_gpt2):
    path, hf = tiny_gpt2
    m = load_model(path)
    assert m.config.arch == "gpt2" and m.config.head_dim == 8
    ids = [[5, 17, 3, 99, 42, 7], [8, 1, 2]]
    batch = m.batch_from_ids(ids)
    ours = m.forward(batch, record=True)
    with torch.no_grad():
        ref = hf.transformer(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True)
    mask = batch.attention_mask.bool()
    assert torch.allclose(ours.hidden[mask], ref.last_hidden_state[mask], atol=1e-5)
    for layer, rec in enumerate(ours.layers):
        for b, n in enumerate(batch.lengths):
            assert (rec.probs[b, :, :n, :n] - ref.attentions[layer][b, :, :n, :n]).abs().max() <= 1e-5
            # causal: no query attends to a later key
            assert float(torch.triu(rec.probs[b, :, :n, :n], diagonal=1).abs().max()) == 0.0


def test_gpt2_from_transformers_and_single_file(tiny_gpt2):
    path, hf = tiny_gpt2
    a = from_transformers(hf)
    b = load_model(path / "model.safetensors")
    batch = a.batch_from_ids([[1, 2, 3, 4]])
    assert torch.allclose(a.forward(batch).hidden, b.forward(batch).hidden)


def test_bert_with_prefix_and_random_weights(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(1)
    hf = BertForMaskedLM(BertConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                                    intermediate_size=48, vocab_size=60)).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    m = load_model(tmp_path)
    batch = m.batch_from_ids([[2, 5, 9, 3], [2, 7, 3]])
    with torch.no_grad():
        ref = hf.bert(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    mask = batch.attention_mask.bool()
    assert torch.allclose(m.forward(batch).hidden[mask], ref.last_hidden_state[mask], atol=1e-5)


# --------------------------------------------------------------------------- errors
def test_missing_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model at"):
        load_model(tmp_path / "nothing")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelNotFoundError, match="pickled checkpoints are never loaded"):
        load_model(tmp_path)
    with pytest.raises(UnsupportedModelError, match="never unpickles"):
        load_model(tmp_path / "pytorch_model.bin")


def test_unsupported_and_corrupt_models(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 16)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnsupportedModelError, match="'llama'"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UnsupportedModelError, match="cannot read"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2,
                                                      "num_hidden_layers": 1, "intermediate_size": 8,
                                                      "max_position_embeddings": 8, "vocab_size": 8}))
    with pytest.raises(UnsupportedModelError, match="safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedModelError, match="hidden_size"):
        load_model(tmp_path)


def test_empty_and_bad_inputs(minilm):
    with pytest.raises(EmptyInputError):
        extract(minilm, [])
    with pytest.raises(EmptyInputError):
        extract(minilm, ["   "])
    with pytest.raises(ShapeError):
        minilm.head_weights(6, 0)
    with pytest.raises(EmptyInputError):
        minilm.batch_from_ids([[]])


# --------------------------------------------------------------------------- exact plane slices
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.just(3)), elements=st.integers(-3, 3).map(float)))
def test_plane_slice_cells_are_argmax_regions(K):
    c, u, w = np.array([0.1, 0.0, 0.2]), np.array([1.0, 0.5, 0.0]), np.array([0.0, 1.0, -0.5])
    cells = plane_slice(K, c, u, w, window=2.0)
    assert abs(sum(x.area for x in cells) - 16.0) < 1e-9  # the cells tile the window (ties included)
    for cell in cells:
        p = cell.vertices.mean(0)  # interior point of a convex polygon
        s = K @ (c + p[0] * u + p[1] * w)
        assert s[cell.key] >= s.max() - 1e-9
    rng = np.random.default_rng(0)
    for p in rng.uniform(-2, 2, size=(20, 2)):
        s = K @ (c + p[0] * u + p[1] * w)
        best = np.flatnonzero(s >= s.max() - 1e-12)
        assert any(cell.key in best for cell in cells)


def test_query_plane_contains_queries_in_2d():
    rng = np.random.default_rng(3)
    Q = rng.normal(size=(30, 2)) @ np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 1.0]]) + 5.0
    c, u, w, xy = query_plane(Q)
    assert np.allclose(c + xy[:, :1] * u + xy[:, 1:] * w, Q)  # rank-2 queries lie in the plane exactly
