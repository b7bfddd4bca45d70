"""The peers the inference bench times against ours, each at its best setting
on the same backbone folder: the Hugging Face token-classification pipeline in
float32 and with the model loaded in bfloat16, the same model exported to ONNX
and run by ONNX Runtime in float32 and with dynamic int8 quantisation, and
GLiNER over the same backbone. Each builder returns a function that runs the
peer over a list of texts, as its user would call it.

The token-classification heads and GLiNER's span/prompt layers are untrained
(random): these rows measure speed, not accuracy.
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

__all__ = ["hf_pipeline", "export_onnx", "onnx_runner", "gliner_runner", "GLINER_THRESHOLD", "HF_STRIDE"]

Runner = Callable[[List[str]], Any]

# Overlap between chunks of a long text, in wordpieces (the HF pipeline's `stride`)
HF_STRIDE = 64
# An untrained GLiNER scores every candidate about 0.51; at GLiNER's default 0.5 every
# span of every label would reach its decoder, work a trained model does not do. Above
# the random scores, the row times the encoder and span scoring, as a trained model's would.
GLINER_THRESHOLD = 0.9


def _token_model(backbone: Path, n_labels: int, dtype: Any = None) -> Any:
    from transformers import AutoModelForTokenClassification

    kwargs = {"num_labels": n_labels}
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    model = AutoModelForTokenClassification.from_pretrained(str(backbone), **kwargs)
    model.eval()
    return model


def _tokenizer(backbone: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(backbone))
    # Long paragraphs: chunk at the model's length with an overlap, as spaCy's windows do
    tok.model_max_length = 512
    return tok


def hf_pipeline(backbone: Path, n_labels: int, batch_size: int, bfloat16: bool = False) -> Runner:
    """The `token-classification` pipeline on the backbone with a random head.

    backbone (Path): The transformer folder.
    n_labels (int): Labels of the head.
    batch_size (int): The pipeline's batch size.
    bfloat16 (bool): Load the model with `torch_dtype=torch.bfloat16` (weights held
        in bfloat16, so no cast at each call), else float32.
    RETURNS (Callable[[List[str]], Any]): Runs the pipeline over texts.
    """
    import torch
    from transformers import pipeline

    model = _token_model(backbone, n_labels, torch.bfloat16 if bfloat16 else None)
    pipe = pipeline(
        "token-classification",
        model=model,
        tokenizer=_tokenizer(backbone),
        aggregation_strategy="simple",
        batch_size=batch_size,
        stride=HF_STRIDE,
        device=-1,
    )
    return lambda texts: pipe(texts)


def export_onnx(backbone: Path, n_labels: int, out_dir: Path) -> Dict[str, Path]:
    """Export the token-classification model (random head) to ONNX with
    `torch.onnx.export` (dynamic batch and length), then quantise it with ONNX
    Runtime's `quantize_dynamic` (int8 weights, activations quantised at run time).

    backbone (Path): The transformer folder.
    n_labels (int): Labels of the head.
    out_dir (Path): Where model.onnx and model.int8.onnx go (reused when present).
    RETURNS (Dict[str, Path]): "float32" and "int8" model files.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out_dir / "model.onnx", out_dir / "model.int8.onnx"
    if not fp32.exists():
        model = _token_model(backbone, n_labels)
        enc = _tokenizer(backbone)(["an example", "a second example text"], return_tensors="pt", padding=True)
        axes = {0: "batch", 1: "length"}
        with torch.no_grad():
            torch.onnx.export(
                model,
                (enc["input_ids"], enc["attention_mask"]),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
                opset_version=17,
                dynamo=False,
            )
    if not int8.exists():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return {"float32": fp32, "int8": int8}


def onnx_runner(model_file: Path, backbone: Path, batch_size: int, threads: int) -> Runner:
    """ONNX Runtime on the CPU: tokenise with the backbone's fast tokenizer
    (chunks of 512 wordpieces overlapping by HF_STRIDE), run batches, take the
    argmax label per wordpiece. No entity grouping: forward + argmax only.

    model_file (Path): An export_onnx file.
    backbone (Path): The folder of its tokenizer.
    batch_size (int): Chunks per run.
    threads (int): intra-op threads (the same count torch uses for the other rows).
    RETURNS (Callable[[List[str]], Any]): Runs over texts; returns label ids per chunk.
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    tok = _tokenizer(backbone)

    def run(texts: List[str]) -> List[Any]:
        enc = tok(list(texts), truncation=True, max_length=512, stride=HF_STRIDE, return_overflowing_tokens=True)
        ids, masks = enc["input_ids"], enc["attention_mask"]
        out = []
        for b in range(0, len(ids), batch_size):
            batch = tok.pad({"input_ids": ids[b : b + batch_size], "attention_mask": masks[b : b + batch_size]}, return_tensors="np")
            feed = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
            (logits,) = session.run(["logits"], feed)
            out.extend(logits.argmax(-1))
        return out

    return run


def gliner_runner(backbone: Path, labels: Sequence[str], window: int, batch_size: int = 8) -> Runner:
    """GLiNER built from its config over the backbone (`GLiNER.from_config(
    GLiNERConfig(model_name=backbone))`: span mode markerV0, spans up to 12
    words), untrained, predicting overlapping spans (`flat_ner=False`,
    `multi_label=True`) for every label, on spaCy's tokens in windows of at
    most `window` words, as the GLiNER baseline predicts.

    backbone (Path): The transformer folder.
    labels (Sequence[str]): The label prompts.
    window (int): The most words per window.
    batch_size (int): Windows per forward pass.
    RETURNS (Callable[[List[str]], Any]): Runs over texts; returns entities per window.
    """
    import spacy
    import torch
    from gliner import GLiNER, GLiNERConfig

    from ..evaluation.gliner_baseline import doc_words, windows

    model = GLiNER.from_config(GLiNERConfig(model_name=str(backbone)))
    model.eval()
    nlp = spacy.blank("en")
    labels = list(labels) or ["ENTITY"]

    def run(texts: List[str]) -> List[Any]:
        chunks = []
        for doc in nlp.pipe(texts):
            words = doc_words(doc)
            chunks.extend(" ".join(words[s:e]) for s, e in windows(len(words), window))
        with torch.inference_mode():
            return model.inference(
                chunks, labels, flat_ner=False, multi_label=True, threshold=GLINER_THRESHOLD, batch_size=batch_size
            )

    return run
