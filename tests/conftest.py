"""Shared fixtures: a tiny local BERT (built in seconds, never downloaded),
the shared CRAFT data when present, and the project root."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CRAFT = ROOT.parent / "shared" / "data" / "craft"

TINY_TEXTS = [
    "BMP2 and BMP4 regulate limb patterning and skeletogenesis in the mouse embryo.",
    "Mutations in the Brca1 gene cause breast cancer in humans and mice.",
    "The protein binds DNA in the nucleus of neural crest cells.",
    "Expression of Shh was detected in the apical ectodermal ridge.",
    "Retinal ganglion cells project axons to the optic nerve.",
]


def build_tiny_bert(out_dir: Path, texts=TINY_TEXTS, hidden: int = 32, layers: int = 2) -> Path:
    """Write a few-layer BertModel with a WordPiece vocab trained on `texts`
    (uncased, like BiomedBERT) to `out_dir`, loadable by AutoModel/AutoTokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    tok.train_from_iterator(list(texts) * 4, trainer=trainer)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (out_dir / "vocab.txt").write_text("\n".join(w for w, _ in vocab) + "\n", encoding="utf8")
    hf_tok = BertTokenizerFast(vocab_file=str(out_dir / "vocab.txt"), do_lower_case=True)
    hf_tok.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A local directory holding a tiny uncased BERT and its tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def craft_dir() -> Path:
    """The shared CRAFT exports; tests using it skip when ../shared is absent."""
    if not (CRAFT / "craft_dev.jsonl").exists():
        pytest.skip(f"CRAFT exports not found at {CRAFT} (../shared is absent)")
    return CRAFT


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU with cupy (skipped with 'no GPU' otherwise)")
    config.addinivalue_line("markers", "slow: builds venvs or trains; still part of the default run")
