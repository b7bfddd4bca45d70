"""Shared fixtures: a tiny local BERT (built in seconds, never downloaded),
CRAFT when present (mirror or fetched asset), and the project root."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

# Shared fixtures: the Hub tests' (a real tiny wheel, its metrics, the local Hub), the
# PostgreSQL tests' throwaway server, a tiny trained spancat on disk, and the assisted
# annotation and uptraining tests' tiny teacher
pytest_plugins = ["hub_fixtures", "pg_fixtures", "spancat_fixtures", "assist_fixtures"]

# No __pycache__ in components/: project.yml hashes its folders as deps (scripts/__init__.py does the same)
sys.dont_write_bytecode = True

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
# CRAFT, two ways: the Prodigy-format offline mirror (BIOMED_CRAFT_MIRROR, default
# ../shared/data/craft beside the project, used when present) and the corpus itself
# as `weasel assets` fetches it (BIOMED_CRAFT_DIR, default assets/craft)
CRAFT = Path(os.environ.get("BIOMED_CRAFT_MIRROR", ROOT.parent / "shared" / "data" / "craft"))
CRAFT_ASSET = Path(os.environ.get("BIOMED_CRAFT_DIR", ROOT / "assets" / "craft"))
CRAFT_MISSING = (
    "CRAFT not available: no Prodigy mirror at {mirror} (set BIOMED_CRAFT_MIRROR) "
    "and no corpus at {asset} (run `weasel assets`, or set BIOMED_CRAFT_DIR)"
)

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


def _has_mirror() -> bool:
    return (CRAFT / "craft_dev.jsonl").exists()


def _has_asset() -> bool:
    return (CRAFT_ASSET / "articles" / "txt").is_dir() and (CRAFT_ASSET / "concept-annotation").is_dir()


@pytest.fixture(scope="session")
def craft_dir(tmp_path_factory) -> Path:
    """The CRAFT mirror in Prodigy's format (craft_{train,dev,test}.jsonl).
    Without it, it is made from the fetched corpus (the knowtator reader, the
    same tasks: tests/test_ingest_knowtator.py checks it); skipped, with the
    reason, when neither is here."""
    if _has_mirror():
        return CRAFT
    if not _has_asset():
        pytest.skip(CRAFT_MISSING.format(mirror=CRAFT, asset=CRAFT_ASSET))
    from biomed_spancat.ingest.readers import ReadOptions, get_reader

    out = tmp_path_factory.mktemp("craft_mirror")
    reader = get_reader(str(CRAFT_ASSET), "knowtator")
    for split in ("train", "dev", "test"):
        with (out / f"craft_{split}.jsonl").open("w", encoding="utf8") as f:
            for task in reader.read(str(CRAFT_ASSET), [f"craft_{split}"], ReadOptions()):
                if task.data is not None:
                    f.write(json.dumps(task.data, ensure_ascii=False) + "\n")
    return out


@pytest.fixture(scope="session")
def craft_asset() -> Path:
    """CRAFT as fetched by `weasel assets` (Knowtator XML + article texts)."""
    if not _has_asset():
        pytest.skip(f"CRAFT corpus not found at {CRAFT_ASSET} (run `weasel assets`, or set BIOMED_CRAFT_DIR)")
    return CRAFT_ASSET


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def transformer_nlp(bert: Path, **model):
    """A blank English pipeline whose one component is the transformer
    (biomed.BiomedBERT.v1 over the local BERT `bert`; `model` adds or overrides
    its settings), not initialised: tests add what they need after it."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"@architectures": "biomed.BiomedBERT.v1", "name": str(bert), **model}})
    return nlp


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU with cupy (skipped with 'no GPU' otherwise)")
    config.addinivalue_line("markers", "slow: builds venvs or trains; still part of the default run")


def convert_cli(*args):
    """Run scripts/convert.py's CLI in-process (loaded by path: the project root need not be
    on sys.path under pytest); `result.text` is its output on one line (wasabi wraps long
    lines, so messages are compared single-spaced)."""
    import importlib.util

    import typer
    from typer.testing import CliRunner

    spec = importlib.util.spec_from_file_location("convert_script", ROOT / "scripts" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = typer.Typer()
    app.command()(module.main)
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.text = " ".join(result.output.split())
    return result


def copy_project(dest: Path, extra=()) -> Path:
    """Copy what a clone of the project holds into `dest`: project.yml, configs/, scripts/
    and components/ (the commands' deps name the package code), plus `extra` folders;
    nothing generated (no __pycache__, egg-info or build folders)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "project.yml", dest / "project.yml")
    for folder in ("configs", "scripts", "components", *extra):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    return dest
