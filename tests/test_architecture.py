"""The registered BiomedBERT architecture: lookup, windows, a real forward pass."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import registry

from biomed_spancat.pipeline.architecture import BIOMEDBERT, configure_strided_windows, get_strided_windows
from conftest import transformer_nlp


def make_doc(n):
    nlp = spacy.blank("en")
    return Doc(nlp.vocab, words=[f"w{i}" for i in range(n)])


def test_registered_by_name():
    func = registry.architectures.get("biomed.BiomedBERT.v1")
    assert func.__name__ == "create_biomed_bert"
    # The default is the real BiomedBERT, uncased
    assert func.__defaults__[0] == BIOMEDBERT


@pytest.mark.parametrize(
    "n,window,stride,expected",
    [
        (0, 4, 3, []),
        (3, 4, 3, [(0, 3)]),
        (4, 4, 3, [(0, 4)]),
        (5, 4, 3, [(0, 4), (1, 5)]),
        (10, 4, 3, [(0, 4), (3, 7), (6, 10)]),
        (11, 4, 4, [(0, 4), (4, 8), (7, 11)]),
    ],
)
def test_strided_windows_cover_every_token(n, window, stride, expected):
    (spans,) = get_strided_windows([make_doc(n)], window, stride)
    assert [(s.start, s.end) for s in spans] == expected
    covered = {i for s in spans for i in range(s.start, s.end)}
    assert covered == set(range(n))


@pytest.mark.parametrize("window,stride,message", [(4, 5, "would skip tokens"), (0, 1, "must be positive")])
def test_bad_window_settings_say_why(window, stride, message):
    with pytest.raises(ValueError, match=message):
        configure_strided_windows(window, stride)


def test_long_doc_gets_vectors_for_every_token(tiny_bert):
    """A paragraph longer than the window (and than 512 wordpieces) is not cut."""
    nlp = transformer_nlp(tiny_bert, window=32, stride=24)
    nlp.initialize()
    text = " ".join(["BMP2 regulates limb patterning in the mouse embryo ."] * 80)  # 720 tokens
    doc = nlp(text)
    assert len(doc) == 720
    trf = doc._.trf_data
    # several windows, more wordpieces in all than one 512 window holds
    assert trf.wordpieces.input_ids.shape[0] > 1
    assert trf.wordpieces.input_ids.size > 512
    # every token aligned to at least one wordpiece, across all windows
    assert len(trf.align) == len(doc)
    assert all(trf.align[i].lengths.sum() >= 1 for i in range(len(doc)))
    assert trf.model_output.last_hidden_state.shape[-1] == 32


def test_uncased_tokenizer(tiny_bert):
    model = registry.architectures.get("biomed.BiomedBERT.v1")(name=str(tiny_bert))
    nlp = spacy.blank("en")
    model.initialize([nlp("x")])
    tokenizer = model.tokenizer
    assert tokenizer.tokenize("BMP2") == tokenizer.tokenize("bmp2")


# --------------------------------------------------------------------------- CPU precision


def _trf_nlp(tiny_bert, precision):
    nlp = transformer_nlp(tiny_bert, cpu_precision=precision)
    nlp.initialize()
    return nlp


def test_cpu_precision_rejects_unknown_value():
    from biomed_spancat.pipeline.architecture import resolve_cpu_precision

    with pytest.raises(ValueError, match="cpu_precision must be one of float32, bfloat16, auto, got 'fp8'"):
        resolve_cpu_precision("fp8")


@pytest.mark.parametrize("native,expected", [(True, "bfloat16"), (False, "float32")])
def test_cpu_precision_auto_follows_the_hardware(monkeypatch, native, expected):
    import torch

    from biomed_spancat.pipeline import architecture

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert architecture.resolve_cpu_precision("auto") == expected
    assert architecture.resolve_cpu_precision("float32") == "float32"
    assert architecture.resolve_cpu_precision("bfloat16") == "bfloat16"


def test_bfloat16_prediction_is_float32_out_and_close_to_float32(tiny_bert):
    """bfloat16 autocast changes the arithmetic, not the interface: every output tensor
    is float32 (numpy has no bfloat16) and the vectors stay close to float32's."""
    import torch

    text = "BMP2 regulates limb patterning in the mouse embryo ."
    fp32 = _trf_nlp(tiny_bert, "float32")
    bf16 = _trf_nlp(tiny_bert, "bfloat16")
    bf16.get_pipe("transformer").model.from_bytes(fp32.get_pipe("transformer").model.to_bytes())
    a, b = fp32(text)._.trf_data, bf16(text)._.trf_data
    for value in b.model_output.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert value.dtype == torch.float32
    x = numpy.asarray(a.model_output.last_hidden_state).ravel()
    y = numpy.asarray(b.model_output.last_hidden_state).ravel()
    assert _cosine(x, y) > 0.99
    assert not numpy.array_equal(x, y)  # the bfloat16 path really ran


# spancat over the transformer, small: for the tests that train through it
_SPANCAT = {"spans_key": "sc", "model": {
    "@architectures": "spacy.SpanCategorizer.v1",
    "reducer": {"@layers": "spacy.mean_max_reducer.v1", "hidden_size": 16},
    "scorer": {"@layers": "spacy.LinearLogistic.v1"},
    "tok2vec": {"@architectures": "spacy-transformers.TransformerListener.v1", "grad_factor": 1.0,
                "pooling": {"@layers": "reduce_mean.v1"}},
}}


def _examples(nlp):
    """One annotated sentence for the training tests."""
    from spacy.training import Example

    ref = nlp.make_doc("BMP2 regulates limb patterning in the mouse embryo .")
    ref.spans["sc"] = [ref.char_span(0, 4, label="PR"), ref.char_span(15, 19, label="UBERON")]
    return [Example(nlp.make_doc(ref.text), ref)]


def _vectors(nlp, text):
    return numpy.asarray(nlp(text)._.trf_data.model_output.last_hidden_state).ravel()


def _cosine(x, y):
    return float(x @ y / (numpy.linalg.norm(x) * numpy.linalg.norm(y)))


def test_bfloat16_prediction_runs_bfloat16_weights_and_keeps_the_float32_ones(tiny_bert):
    import torch

    nlp = _trf_nlp(tiny_bert, "bfloat16")
    model = nlp.get_pipe("transformer").model
    _vectors(nlp, "BMP2 regulates limb patterning .")
    shim = model.layers[0].shims[0]
    assert all(p.dtype == torch.float32 for p in model.transformer.parameters())
    assert shim._model is model.transformer  # the swap is undone
    copies = [v for k, v in vars(shim).items() if "bfloat16" in k]
    assert len(copies) == 1 and all(p.dtype == torch.bfloat16 for p in copies[0][1].parameters())


def test_bfloat16_prediction_follows_new_weights(tiny_bert):
    """The bfloat16 copy is remade after the weights change: loaded bytes, a training step."""
    import torch
    from spacy.training import Example

    text = "BMP2 regulates limb patterning in the mouse embryo ."
    other = _trf_nlp(tiny_bert, "float32")
    torch.manual_seed(0)
    for p in other.get_pipe("transformer").model.transformer.parameters():
        p.data.add_(torch.randn_like(p) * 0.2)
    bf16 = _trf_nlp(tiny_bert, "bfloat16")
    before = _vectors(bf16, text)
    bf16.get_pipe("transformer").model.from_bytes(other.get_pipe("transformer").model.to_bytes())
    loaded = _vectors(bf16, text)
    assert _cosine(loaded, _vectors(other, text)) > 0.99 and _cosine(loaded, before) < 0.99

    bf16.add_pipe("spancat", config=_SPANCAT)
    ref = bf16.make_doc(text)
    ref.spans["sc"] = [ref.char_span(0, 4, label="PR")]
    examples = [Example(bf16.make_doc(text), ref)]
    optimizer = bf16.resume_training()
    bf16.get_pipe("spancat").add_label("PR")
    bf16.get_pipe("spancat").initialize(lambda: examples, nlp=bf16)
    for _ in range(3):
        bf16.update(examples, sgd=optimizer, drop=0.0)
    trained = _vectors(bf16, text)
    assert _cosine(trained, loaded) < 0.9999
    fp32 = _trf_nlp(tiny_bert, "float32")
    fp32.get_pipe("transformer").model.from_bytes(bf16.get_pipe("transformer").model.to_bytes())
    assert _cosine(trained, _vectors(fp32, text)) > 0.99


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_prediction_from_threads_matches_one_thread(tiny_bert, precision):
    """Both precisions swap a module into the shim to predict: threads sharing one
    pipeline never see each other's swap."""
    from concurrent.futures import ThreadPoolExecutor

    nlp = _trf_nlp(tiny_bert, precision)
    texts = [f"Gene {i} binds protein {i + 1} in cell line {i} ." for i in range(16)]
    serial = [_vectors(nlp, t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda t: _vectors(nlp, t), texts))
    assert all(numpy.allclose(a, b, atol=1e-6) for a, b in zip(serial, threaded))
    assert nlp.get_pipe("transformer").model.layers[0].shims[0]._model is nlp.get_pipe("transformer").model.transformer


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_bfloat16_training_updates_float32_weights(tiny_bert, precision):
    """A training step under CPU autocast: gradients flow, the weights stay float32."""
    import torch

    nlp = transformer_nlp(tiny_bert, cpu_precision=precision)
    nlp.add_pipe("spancat", config=_SPANCAT)
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    hf = nlp.get_pipe("transformer").model.transformer
    before = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    losses = {}
    for _ in range(2):  # one step left the weights unchanged with spacy-transformers 1.4; two move them
        nlp.update(examples, sgd=optimizer, losses=losses)
    after = hf.state_dict()
    assert losses["spancat"] > 0 and losses["transformer"] > 0  # gradients reached the transformer
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)


def _trained_with_averages(tiny_bert, steps=3):
    """A transformer + spancat pipeline after a few updates by an optimizer that keeps averages."""
    from thinc.api import Adam

    nlp = transformer_nlp(tiny_bert, cpu_precision="float32")
    nlp.add_pipe("spancat", config=_SPANCAT)
    examples = _examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3, use_averages=True)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp, optimizer


def _torch_weights(nlp):
    return {k: v.detach().clone() for k, v in nlp.get_pipe("transformer").model.transformer.state_dict().items()}


def test_use_params_applies_the_optimizers_transformer_averages(tiny_bert):
    """With `use_averages`, evaluation and model-best see the averaged transformer, not its last weights."""
    import torch

    nlp, optimizer = _trained_with_averages(tiny_bert)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    averages = {name: optimizer.averages[(shim.id, name)] for name, _ in shim._model.named_parameters()
                if (shim.id, name) in optimizer.averages}
    assert averages, "the optimizer kept no averages for the transformer"
    last = _torch_weights(nlp)
    assert any(not numpy.allclose(averages[k], last[k].numpy()) for k in averages)
    with nlp.use_params(optimizer.averages):
        inside = _torch_weights(nlp)
    assert all(numpy.array_equal(inside[k].numpy(), averages[k]) for k in averages)
    after = _torch_weights(nlp)
    assert all(torch.equal(after[k], last[k]) for k in last)  # restored on leaving


def test_spacy_transformers_own_shim_ignores_those_averages(tiny_bert):
    """Why AveragingHFShim exists: spacy-transformers' HFShim looks for other keys. If this
    fails, spacy-transformers reads the optimizer's keys itself and the subclass can go."""
    import torch
    from spacy_transformers.layers.hf_shim import HFShim

    nlp, optimizer = _trained_with_averages(tiny_bert)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    last = _torch_weights(nlp)
    with HFShim.use_params(shim, optimizer.averages):
        inside = _torch_weights(nlp)
    assert all(torch.equal(inside[k], last[k]) for k in last)


def test_pipeline_saved_under_averages_loads_the_averaged_transformer(tiny_bert, tmp_path):
    """spaCy's train saves model-best inside `nlp.use_params(optimizer.averages)`."""
    nlp, optimizer = _trained_with_averages(tiny_bert)
    text = "BMP2 regulates limb patterning in the mouse embryo ."
    with nlp.use_params(optimizer.averages):
        nlp.to_disk(tmp_path / "model")
        expected = nlp(text)._.trf_data.model_output.last_hidden_state.copy()
    last = nlp(text)._.trf_data.model_output.last_hidden_state
    loaded = spacy.load(tmp_path / "model")(text)._.trf_data.model_output.last_hidden_state
    assert not numpy.allclose(last, expected)
    assert numpy.allclose(loaded, expected, atol=1e-5)


def _trf_with_attention_dropout(tiny_bert, attention_dropout):
    settings = {} if attention_dropout is None else {"attention_dropout": attention_dropout}
    nlp = transformer_nlp(tiny_bert, cpu_precision="float32", **settings)
    nlp.initialize()
    return nlp


def _bytes_saved_for_backward(nlp, text):
    """Bytes of the tensors autograd keeps for the backward pass of one training forward."""
    import torch

    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    trf = nlp.get_pipe("transformer").model
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trf.begin_update([nlp.make_doc(text)])
    return sum(saved)


def test_attention_dropout_sets_the_model_config_and_none_keeps_it(tiny_bert):
    own = _trf_with_attention_dropout(tiny_bert, None).get_pipe("transformer").model.transformer.config
    off = _trf_with_attention_dropout(tiny_bert, 0.0).get_pipe("transformer").model.transformer.config
    assert off.attention_probs_dropout_prob == 0.0
    assert own.attention_probs_dropout_prob == 0.1  # the tiny BERT's own value, as BERT's
    assert off.hidden_dropout_prob == own.hidden_dropout_prob == 0.1  # hidden-state dropout is kept


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_attention_dropout_rejects_values_outside_0_1(tiny_bert, value):
    with pytest.raises(ValueError, match=r"attention_dropout must be in \[0, 1\)"):
        registry.architectures.get("biomed.BiomedBERT.v1")(name=str(tiny_bert), attention_dropout=value)


def test_no_attention_dropout_keeps_no_attention_matrices_for_backward(tiny_bert):
    """Without attention dropout the fused attention kernel runs: a training forward
    keeps fewer bytes for the backward pass than with BERT's own 0.1."""
    text = " ".join(["BMP2 regulates limb patterning in the mouse embryo ."] * 12)
    with_dropout = _bytes_saved_for_backward(_trf_with_attention_dropout(tiny_bert, 0.1), text)
    without = _bytes_saved_for_backward(_trf_with_attention_dropout(tiny_bert, 0.0), text)
    assert without < 0.8 * with_dropout


def test_length_groups_cut_where_padding_costs_more_than_a_call():
    from biomed_spancat.pipeline.architecture import length_groups

    lengths = [10, 10, 11, 50, 52, 120, 128]
    # a call costs 20 wordpieces: padding 10 -> 128 (118 per row) is worth three calls
    assert length_groups(lengths, overhead=20) == [(0, 3), (3, 5), (5, 7)]
    # a call costs more than all the padding: one group, as spacy-transformers pads
    assert length_groups(lengths, overhead=1000) == [(0, 7)]
    assert length_groups([5] * 5, overhead=0, max_rows=2) == [(0, 1), (1, 3), (3, 5)]
    assert length_groups([], overhead=5) == []


def _tiny_hf(tiny_bert):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(tiny_bert)).eval()


def _calls(module):
    widths = []
    module.register_forward_pre_hook(lambda _m, _a, kw: widths.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    return widths


def test_length_buckets_predict_each_row_as_the_padded_batch_does(tiny_bert):
    """Rows cut to their group's longest give the padded batch's vectors where the
    mask is 1 (zeros past each row's end) and its pooled output, in the batch's order."""
    import torch

    from biomed_spancat.pipeline.architecture import LengthBuckets

    hf = _tiny_hf(tiny_bert)
    lengths = [3, 9, 5, 2]
    ids = torch.randint(5, 100, (4, 9))
    mask = (torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]).long()
    with torch.inference_mode():
        padded = hf(input_ids=ids, attention_mask=mask)
        bucketed_model = LengthBuckets(hf)
        bucketed_model.overhead = 0  # every row alone is cheapest
        widths = _calls(hf)
        grouped = bucketed_model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert widths == [(1, 2), (1, 3), (1, 5), (1, 9)]
    real = mask.bool()
    assert torch.allclose(grouped.last_hidden_state[real], padded.last_hidden_state[real], atol=1e-5)
    assert not grouped.last_hidden_state[~real].any()
    assert torch.allclose(grouped.pooler_output, padded.pooler_output, atol=1e-5)


def test_length_buckets_leave_a_left_padded_batch_whole(tiny_bert):
    import torch

    from biomed_spancat.pipeline.architecture import LengthBuckets

    hf = _tiny_hf(tiny_bert)
    ids = torch.randint(5, 100, (2, 6))
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    widths = _calls(hf)
    with torch.inference_mode():
        out = LengthBuckets(hf)(input_ids=ids, attention_mask=mask)
    assert widths == [(2, 6)]
    assert out.last_hidden_state.shape == (2, 6, hf.config.hidden_size)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_pipeline_predicts_short_and_long_docs_in_separate_calls(tiny_bert, precision):
    """In nlp.pipe a batch of one long and several short docs is not padded to the
    long one: the transformer sees the short windows cut to their own length, and
    each doc gets the vectors it gets alone."""

    nlp = _trf_nlp(tiny_bert, precision)
    model = nlp.get_pipe("transformer").model
    inner = model.transformer if precision == "float32" else None
    texts = ["BMP2 regulates limb patterning ."] * 6 + [" ".join(["the mouse embryo expresses BMP2"] * 20) + " ."]
    alone = [nlp(t)._.trf_data.model_output.last_hidden_state for t in texts]
    if inner is not None:
        widths = _calls(inner)
    docs = list(nlp.pipe(texts, batch_size=len(texts)))
    if inner is not None:
        assert len(widths) == 2 and widths[0][0] == 6 and widths[0][1] < widths[1][1]
    for doc, ref in zip(docs, alone):
        got = doc._.trf_data.model_output.last_hidden_state
        n = ref.shape[1]
        assert numpy.allclose(got[:, :n], ref, atol=1e-2 if precision == "bfloat16" else 1e-5)
