"""Where the CRAFT corpus comes from: an offline mirror in Prodigy's format
when one is present, else the corpus itself as `weasel assets` fetches it
from https://github.com/UCDenver-ccp/CRAFT (read by the `knowtator` reader).

Both hold the same three datasets, CRAFT's own article split
(`articles/ids/craft-ids-{train,dev,test}.txt`): `craft_train` (60
articles), `craft_dev` (7) and `craft_test` (30); the knowtator reader gives
exactly the mirror's tasks (tests/test_ingest_knowtator.py).
"""

import subprocess
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .knowtator import is_knowtator_corpus
from .tasks import IngestError

__all__ = ["CRAFT_REPO", "CRAFT_TAG", "CRAFT_COMMIT", "CRAFT_DATASETS", "craft_source", "mirror_stands_in", "git_commit"]

CRAFT_REPO = "https://github.com/UCDenver-ccp/CRAFT"
CRAFT_TAG = "v5.0.2"
CRAFT_COMMIT = "2abe82b8bb8089448b84937d5f61d8c218011322"
CRAFT_DATASETS = {"train": "craft_train", "dev": "craft_dev", "test": "craft_test"}


def _is_mirror(path: Path) -> bool:
    return all((path / f"{name}.jsonl").is_file() for name in CRAFT_DATASETS.values())


def git_commit(path: Path) -> Optional[str]:
    """The commit a git checkout is at, or None when `path` is not one (a
    sparse `weasel assets --sparse` copy has no .git) or git is missing."""
    if not (path / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def craft_source(mirror: Optional[Path], corpus: Path, commit: Optional[str] = CRAFT_COMMIT) -> Tuple[str, str]:
    """Pick the CRAFT source: the mirror when present, else the fetched corpus.

    mirror (Optional[Path]): A folder with craft_{train,dev,test}.jsonl
        (Prodigy spans.manual exports); None or absent to skip.
    corpus (Path): CRAFT's repository as `weasel assets` fetches it.
    commit (Optional[str]): The commit the corpus must be at when it is a git
        checkout; None accepts any.
    RETURNS (Tuple[str, str]): (source path, "mirror" or "knowtator").
    RAISES (IngestError): Neither is present, or the corpus is at another commit.
    """
    if mirror is not None and _is_mirror(Path(mirror)):
        return str(mirror), "mirror"
    corpus = Path(corpus)
    if not is_knowtator_corpus(str(corpus)):
        where = f"no mirror at {mirror} and " if mirror is not None else ""
        raise IngestError(
            f"CRAFT not found: {where}no corpus at {corpus} (articles/txt/ and concept-annotation/); "
            f"run `weasel assets` to fetch it from {CRAFT_REPO} ({CRAFT_TAG})"
        )
    found = git_commit(corpus)
    if commit and found is not None and found != commit:
        raise IngestError(
            f"{corpus}: CRAFT is at commit {found[:12]}, not the pinned {commit[:12]} ({CRAFT_TAG}); "
            "remove the folder and run `weasel assets` again"
        )
    return str(corpus), "knowtator"


def mirror_stands_in(mirror: Optional[Path], source: str, datasets: Sequence[str]) -> bool:
    """Whether the mirror may be read in place of `source`: only when the
    source is CRAFT itself (its fetched corpus, or nothing yet at that path)
    and every dataset asked is one of CRAFT's. A user's own export is read as
    given, whatever mirror lies beside the project.

    mirror (Optional[Path]): A folder with craft_{train,dev,test}.jsonl; None to skip.
    source (str): The source the command was given.
    datasets (Sequence[str]): The datasets asked of it.
    RETURNS (bool): True to read the mirror instead.
    """
    if mirror is None or not _is_mirror(Path(mirror)) or not datasets:
        return False
    if not set(datasets) <= set(CRAFT_DATASETS.values()):
        return False
    return not Path(source).exists() or is_knowtator_corpus(source)
