"""Staging: write exactly the folder `push` uploads (README.md, the wheel under
its real name, the per-label F chart) without touching the network, and
check such a folder before it is pushed.

Project library code: never imported by a loaded pipeline.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Optional

from ...util import write_dir
from .card import EXAMPLE_TEXT, CardExample, build_card, install_url, parse_card, plot_per_label_f
from .inputs import (
    CARD_NAME,
    CHART_NAME,
    DEFAULT_ENDPOINT,
    STAGED_NAMES,
    HubError,
    StagedFolder,
    check_wheel_name,
    load_metrics,
    load_threshold_record,
    package_name,
    read_wheel,
    spancat_labels,
)

__all__ = ["check_repo_part", "run_example", "stage_hub", "check_staged"]

# Run in a child process on the unpacked wheel: the card shows what the shipped artifact returns.
_EXAMPLE_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
package = importlib.import_module(sys.argv[2])
nlp = package.load()
doc = nlp(sys.argv[3])
group = doc.spans[sys.argv[4]]
scores = group.attrs.get("scores")
spans = [[s.start_char, s.end_char, s.label_, s.text, round(float(scores[i]), 3) if scores is not None else None]
         for i, s in enumerate(group)]
print("EXAMPLE " + json.dumps(spans))
"""


def check_repo_part(value: str, what: str) -> str:
    """`value` when it is a valid Hub namespace or repo name; HubError otherwise."""
    if not re.match(r"^[A-Za-z0-9][\w.-]{0,95}$", value or "") or ".." in value or value.endswith((".git", "-", ".")):
        raise HubError(f"--{what} '{value}' is not a valid Hub {what} name (letters, digits, '-', '_', '.')")
    return value


def run_example(wheel: Path, package: str, spans_key: str, text: str = EXAMPLE_TEXT) -> CardExample:
    """Run the packaged pipeline, unpacked from the wheel into a temporary folder, on `text`
    in a child process (offline; the project's own package plays no part in loading it).

    wheel (Path): The wheel.
    package (str): Its package name (en_biomed_spancat).
    spans_key (str): The spancat's spans key.
    text (str): The example sentence (made up; never corpus text).
    RETURNS (CardExample): The spans, sorted as the pipeline returns them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        proc = subprocess.run([sys.executable, "-c", _EXAMPLE_SCRIPT, tmp, package, text, spans_key],
                              cwd=tmp, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("EXAMPLE ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise HubError(f"{wheel}: the packaged pipeline failed on the card's example sentence ({tail})")
    spans = [tuple(s) for s in json.loads(lines[-1][len("EXAMPLE "):])]
    return CardExample(text, spans)  # type: ignore[arg-type]


def stage_hub(
    wheel: Path,
    out_dir: Path,
    metrics_path: Path,
    namespace: str,
    repo: str,
    license_id: str,
    baselines: Optional[Dict[str, Path]] = None,
    *,
    threshold_record: Optional[Path] = None,
    endpoint: Optional[str] = None,
    example_text: str = EXAMPLE_TEXT,
) -> StagedFolder:
    """Write exactly the folder push uploads: README.md (the card), the wheel under
    its real name, and the per-label F chart. No network. The folder is rebuilt
    from scratch in a temporary sibling and swapped in, so nothing stale survives
    and a failure leaves the previous folder as it was.

    wheel (Path): The wheel built by `spacy package`.
    out_dir (Path): The folder to write (e.g. hub/en_biomed_spancat).
    metrics_path (Path): The evaluation of the installed wheel.
    namespace (str): Hub user or organisation (for the install line).
    repo (str): Hub repo name.
    license_id (str): The licence var.
    baselines (Optional[Dict[str, Path]]): name -> metrics JSON of a baseline on the same data.
    threshold_record (Optional[Path]): tune-threshold's record (metrics/threshold.json): which data
        chose the threshold, so the card says whether its scores are held out or optimistic.
    endpoint (Optional[str]): The Hub the card's install line names; None reads HF_ENDPOINT
        (huggingface.co by default).
    example_text (str): The card's example sentence (made up; never corpus text).
    RETURNS (StagedFolder): What was written.
    """
    repo_id = f"{check_repo_part(namespace, 'namespace')}/{check_repo_part(repo, 'repo')}"
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    meta, spancat = read_wheel(wheel)
    if not spancat:
        raise HubError(f"{wheel}: the packaged pipeline has no spancat component")
    labels = spancat_labels(meta, spancat["component"])
    cm = load_metrics(metrics_path, spancat["spans_key"], package=package_name(meta),
                      version=str(meta.get("version")), labels=labels)
    for name, path in (baselines or {}).items():
        base = load_metrics(Path(path), spancat["spans_key"])
        for key in ("docs", "tokens", "gold_spans"):
            if key in base.data and key in cm.data and base.data[key] != cm.data[key]:
                raise HubError(
                    f"{path}: baseline '{name}' was scored on other data than the wheel ({key}: "
                    f"{base.data[key]} vs {cm.data[key]}); evaluate both on the same data"
                )
        cm.baselines[name] = base
    record = load_threshold_record(threshold_record) if threshold_record is not None else None
    example = run_example(wheel, package_name(meta), spancat["spans_key"], example_text)
    card = build_card(meta, cm, spancat=spancat, repo_id=repo_id, wheel_name=wheel.name,
                      license_id=license_id, endpoint=endpoint, threshold_record=record, example=example)
    def write(folder: Path) -> None:
        (folder / CARD_NAME).write_text(card, encoding="utf8")
        shutil.copy2(wheel, folder / wheel.name)
        plot_per_label_f(cm, labels, folder / CHART_NAME)

    out_dir = write_dir(out_dir, write)
    return StagedFolder(out_dir, out_dir / CARD_NAME, out_dir / wheel.name, out_dir / CHART_NAME)


def check_staged(folder: Path, repo_id: Optional[str] = None) -> StagedFolder:
    """Check that `folder` is what stage_hub writes, and that its card was staged
    for `repo_id` (its install line names the repo the wheel will be served from).

    folder (Path): The staged folder.
    repo_id (Optional[str]): "<namespace>/<repo>" about to be pushed to.
    RETURNS (StagedFolder): The staged files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"{folder}: no staged folder (run the `stage-hub` command first)")
    names = sorted(p.name for p in folder.iterdir())
    wheels = [n for n in names if n.endswith(".whl")]
    extra = [n for n in names if n not in STAGED_NAMES and n not in wheels]
    if extra or len(wheels) != 1 or CARD_NAME not in names or CHART_NAME not in names:
        raise HubError(
            f"{folder}: expected exactly {CARD_NAME}, {CHART_NAME} and one wheel (what stage-hub writes), "
            f"found {', '.join(names) or 'nothing'}; re-run stage-hub"
        )
    wheel = folder / wheels[0]
    check_wheel_name(wheel)
    fm, body = parse_card((folder / CARD_NAME).read_text(encoding="utf8"))
    if repo_id is not None:
        # The host is checked by push (against the endpoint it uses); here, the repo and the wheel.
        expected = install_url(repo_id, wheel.name, "").lstrip("/")
        found = re.search(r"pip install (\S+)", body)
        if not found or not found.group(1).endswith("/" + expected):
            raise HubError(
                f"{folder / CARD_NAME}: the card was staged for another repo "
                f"(install line: {found.group(1) if found else 'none'}); re-run stage-hub with "
                f"--namespace {repo_id.split('/')[0]} --repo {repo_id.split('/')[1]} before pushing to {repo_id}"
            )
    return StagedFolder(folder, folder / CARD_NAME, wheel, folder / CHART_NAME)


def card_install_url(folder: Path) -> str:
    """The install URL written in a staged card ("" when there is none)."""
    _, body = parse_card((Path(folder) / CARD_NAME).read_text(encoding="utf8"))
    found = re.search(r"pip install (\S+)", body)
    return found.group(1) if found else ""
