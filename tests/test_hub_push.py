"""The Hub step's push against a local Hub (tests/hub_server.py) with each
failure, and the download path a user takes (pip install from the resolve URL
into a fresh venv)."""
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from biomed_spancat.publish.hub import (
    CARD_NAME,
    CHART_NAME,
    parse_card,
    stage_hub,
)
from hub_fixtures import (
    ROOT,
    PY,
    VERSION,
    WHEEL_NAME,
    TOKEN,
    TOKEN_ORG,
    TOKEN_READ,
    read_card,
)


def _tree_hash(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- push against the local Hub -----------------------------------------------------------------------


def push(folder: Path, env: Dict[str, str], namespace="alice", repo="en_biomed_spancat", *extra: str,
         hang_guard: Optional[float] = None):
    """Run scripts/push.py as a user would; `hang_guard` seconds stop the test, not the push, if it hangs."""
    cmd = [PY, "-m", "scripts.push", str(folder), "--namespace", namespace, "--repo", repo,
           "--message", "Upload en_biomed_spancat", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=hang_guard)


def _assert_no_token_anywhere(result, fake_hub, *dirs: Path, tokens=(TOKEN, TOKEN_ORG, TOKEN_READ), skip=()):
    out = result.stdout + result.stderr
    for token in tokens:
        assert token not in out
        for repo in fake_hub.repos.values():
            for name, data in repo.files.items():
                assert token.encode() not in data, f"token in uploaded {name}"
        for blob in fake_hub.blobs.values():
            assert token.encode() not in blob
        for d in dirs:
            for p in d.rglob("*"):
                if p.is_file() and p not in skip:
                    assert token.encode() not in p.read_bytes(), f"token written to {p}"


def test_push_uploads_the_staged_folder(staged, fake_hub, hub_env, tmp_path):
    before = _tree_hash(staged)
    hub_env.update(HF_TOKEN=TOKEN, HF_HUB_VERBOSITY="debug")  # even debug logs must not show the token
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    repo = fake_hub.repos["alice/en_biomed_spancat"]
    assert repo.private is True  # private unless asked otherwise
    assert repo.commits[-1] == {"message": "Upload en_biomed_spancat", "author": "alice",
                                "files": sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])}
    for name in (CARD_NAME, CHART_NAME, WHEEL_NAME):
        assert repo.files[name] == (staged / name).read_bytes()
    fm, body = parse_card(repo.files[CARD_NAME].decode())
    assert fm["model-index"][0]["name"] == "en_biomed_spancat"
    assert f"/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}" in body
    calls = [p for _, p in fake_hub.paths()]
    assert calls[:2] == ["/api/whoami-v2", "/api/repos/create"]
    assert "/alice/en_biomed_spancat.git/info/lfs/objects/batch" in calls
    # uploads over the LFS API (whose requests carry the timeout), never the Xet transfer (hf_xet is installed)
    assert fake_hub.lfs_transfers and not any("xet" in t for t in fake_hub.lfs_transfers)
    assert calls[-1] == "/api/models/alice/en_biomed_spancat/commit/main"
    out = " ".join(r.stdout.split())
    # every URL printed is on the endpoint used (HF_ENDPOINT), never huggingface.co
    assert f"Created private repo alice/en_biomed_spancat: {fake_hub.url}/alice/en_biomed_spancat" in out
    assert f"Committed {CARD_NAME}, {WHEEL_NAME}, {CHART_NAME}: {fake_hub.url}/alice/en_biomed_spancat/commit/" in out
    # private: how an account with access installs, the token never on the command line
    assert f'wheel="$(hf download alice/en_biomed_spancat {WHEEL_NAME})" && pip install "$wheel"' in out
    assert "token read from HF_TOKEN or `hf auth login` (never on the command line)" in out
    # the card was staged for huggingface.co: push says so
    assert ("the card's install line names huggingface.co, but this push went to "
            f"{fake_hub.url.split('//')[1]}: re-run stage-hub with the same HF_ENDPOINT") in out
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path)
    assert _tree_hash(staged) == before
    # a second push updates our own repo
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Updated private repo" in " ".join(r.stdout.split()) and len(repo.commits) == 2


def test_push_public_when_asked(staged, fake_hub, hub_env):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    assert r.returncode == 0, r.stdout + r.stderr
    assert fake_hub.repos["alice/en_biomed_spancat"].private is False
    out = " ".join(r.stdout.split())
    assert "Created public repo alice/en_biomed_spancat" in out
    assert f"Install with: pip install {fake_hub.url}/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}" in out


def test_push_takes_the_token_from_the_login_cache(staged, fake_hub, hub_env, tmp_path):
    token_file = Path(hub_env["HF_HOME"]) / "token"
    token_file.write_text(TOKEN)  # what `hf auth login` writes
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "alice/en_biomed_spancat" in fake_hub.repos
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path, skip=(token_file,))


def _out(r) -> str:
    return " ".join((r.stdout + r.stderr).split())


def _own_repo(fake_hub, tiny_wheel, private: bool):
    """alice/en_biomed_spancat as an earlier push of this project left it (our card and wheel)."""
    files = {CARD_NAME: b"---\nmodel-index:\n- name: en_biomed_spancat\n  results: []\n---\n# old\n",
             WHEEL_NAME: tiny_wheel.read_bytes()}
    return fake_hub.seed_repo("alice/en_biomed_spancat", files, private=private)


def _uploads(fake_hub) -> List[str]:
    return [p for m, p in fake_hub.paths() if "/preupload/" in p or "/lfs/" in p or "/commit/" in p
            or p.startswith("/__lfs")]


def test_private_push_into_a_public_repo_is_refused_before_any_upload(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=False)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env)  # --private true is the default
    out = _out(r)
    assert r.returncode == 1
    assert ("alice/en_biomed_spancat already exists and is PUBLIC, but this push asks for a private repo "
            "(--private true): uploading would publish the model") in out
    assert f"make alice/en_biomed_spancat private on the Hub ({fake_hub.url}/alice/en_biomed_spancat/settings)" in out
    assert "or with --make-private" in out and "Nothing was uploaded" in out
    assert "Traceback" not in out and "✔" not in out
    assert _uploads(fake_hub) == []
    assert repo.private is False and len(repo.commits) == 1


def test_make_private_changes_a_public_repo_before_uploading(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=False)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--make-private")
    out = _out(r)
    assert r.returncode == 0, out
    assert "Made alice/en_biomed_spancat private before uploading (--make-private)" in out
    assert "Updated private repo alice/en_biomed_spancat" in out
    assert repo.private is True and len(repo.commits) == 2
    calls = [p for _, p in fake_hub.paths()]
    settings = calls.index("/api/models/alice/en_biomed_spancat/settings")
    assert all(settings < calls.index(p) for p in _uploads(fake_hub))


def test_public_push_into_a_private_repo_leaves_it_private(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=True)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    out = _out(r)
    assert r.returncode == 0, out
    assert "Updated private repo alice/en_biomed_spancat" in out
    assert ("alice/en_biomed_spancat is private and stays private: --private false only sets the visibility "
            "of a new repo") in out
    assert repo.private is True


def test_push_refuses_the_placeholder_namespace(staged, tiny_wheel, tiny_metrics, fake_hub, hub_env, tmp_path):
    folder = stage_hub(tiny_wheel, tmp_path / "hub" / "x", tiny_metrics, "your-hf-username", "en_biomed_spancat",
                       "cc-by-3.0").path
    hub_env["HF_TOKEN"] = TOKEN
    r = push(folder, hub_env, "your-hf-username")
    out = _out(r)
    assert r.returncode == 1
    assert ("--namespace 'your-hf-username' is the placeholder of project.yml, not a Hub account: set "
            "vars.hub_namespace to your Hub user or organisation") in out
    assert fake_hub.log == []  # refused before any request


def test_a_hub_that_accepts_the_commit_and_never_answers(staged, fake_hub, hub_env):
    """The repo this push created is deleted: nothing is left, and the message says so."""
    fake_hub.hang = {"commit"}
    hub_env["HF_TOKEN"] = TOKEN
    # the hang guard only stops the test: push must end by itself, on its own --timeout
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--timeout", "2", hang_guard=120)
    out = _out(r)
    assert r.returncode == 1
    assert (f"the Hub at {fake_hub.url} did not answer within 2 s while uploading to alice/en_biomed_spancat "
            "(ReadTimeout)") in out
    assert ("Cleaned up: the repo alice/en_biomed_spancat that this push created was deleted; nothing of it is "
            "left on the Hub") in out
    assert "Traceback" not in out
    assert "alice/en_biomed_spancat" not in fake_hub.repos
    assert ("DELETE", "/api/repos/delete") in fake_hub.paths()


def test_a_hang_that_also_blocks_the_clean_up_says_what_is_left(staged, fake_hub, hub_env):
    fake_hub.hang = {"commit", "delete_repo"}
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--timeout", "2", hang_guard=120)
    out = _out(r)
    assert r.returncode == 1
    assert ("Left behind: the repo alice/en_biomed_spancat, created by this push (with the visibility asked "
            "for), which may hold part or all of the upload; deleting it failed (ReadTimeout: ") in out
    assert (f"Delete it at {fake_hub.url}/alice/en_biomed_spancat/settings, or run push again to complete it"
            in out)
    assert [m for m, p in fake_hub.paths() if p == "/api/repos/delete"] == ["DELETE"]


def test_a_hang_on_an_existing_repo_says_to_check_its_commits(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=True)
    fake_hub.hang = {"commit"}
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--timeout", "2", hang_guard=120)
    out = _out(r)
    assert r.returncode == 1
    assert ("Left behind: alice/en_biomed_spancat existed before this push; the commit may or may not have been "
            f"applied: check {fake_hub.url}/alice/en_biomed_spancat/commits/main") in out
    assert "alice/en_biomed_spancat" in fake_hub.repos and repo.private is True


def test_private_repo_is_not_served_anonymously(staged, fake_hub, hub_env):
    import urllib.error
    import urllib.request

    hub_env["HF_TOKEN"] = TOKEN
    assert push(staged, hub_env).returncode == 0
    url = f"{fake_hub.url}/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url)
    assert err.value.code == 401


def test_the_cards_private_install_command_works_with_the_token_in_the_environment(staged, fake_hub, hub_env,
                                                                                 tmp_path):
    """The card's command for a private repo, run as written (pip with --no-deps into a folder): `hf download`
    reads HF_TOKEN from the environment, so the token is on no command line; without a token it fails."""
    hub_env["HF_TOKEN"] = TOKEN
    assert push(staged, hub_env).returncode == 0
    assert fake_hub.repos["alice/en_biomed_spancat"].private is True
    _, body = read_card(staged)
    (command,) = [line for line in body.splitlines() if line.startswith('wheel="$(hf download')]
    assert command == f'wheel="$(hf download alice/en_biomed_spancat {WHEEL_NAME})" && pip install "$wheel"'
    target = tmp_path / "site"
    run = command.replace("pip install", f"{PY} -m pip install --no-deps --no-index --target {target}", 1)
    env = dict(hub_env, PATH=f"{Path(PY).parent}:{os.environ['PATH']}", HF_HUB_DISABLE_PROGRESS_BARS="1")
    r = subprocess.run(["bash", "-c", run], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (target / "en_biomed_spancat" / "__init__.py").is_file()
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path, skip=tuple(Path(hub_env["HF_HOME"]).rglob("*")))
    # without a token (and with an empty cache), the private repo gives nothing
    del env["HF_TOKEN"]
    env["HF_HOME"] = str(tmp_path / "empty_hf_home")
    r = subprocess.run(["bash", "-c", run.replace(str(target), str(tmp_path / "site2"))], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and not (tmp_path / "site2" / "en_biomed_spancat").exists()


FOREIGN_CARD = b"---\nlicense: mit\nmodel-index:\n- name: someone_elses_model\n  results: []\n---\n# other\n"


@pytest.mark.parametrize("case,namespace,message", [
    ("no token", "alice", "no Hugging Face token: set HF_TOKEN to a token with write access, or log in once"),
    ("bad token", "alice", "rejected the token from the HF_TOKEN environment variable (401 Unauthorized)"),
    ("read-only token", "alice", "is read-only; pushing needs a write token"),
    ("namespace", "biomed-lab", "refused to create biomed-lab/en_biomed_spancat (403 Forbidden): user bob "
                                "cannot write to namespace 'biomed-lab' (namespaces this token can use: bob)"),
    ("unreachable", "alice", "cannot reach the Hub at http://127.0.0.1:"),
    ("foreign files", "alice", "alice/en_biomed_spancat already exists and holds files this project did not "
                               "stage: README.md (a card for someone_elses_model), pytorch_model.bin"),
    ("offline", "alice", "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set"),
])
def test_push_failures_are_clear_and_leave_the_folder_intact(
    case, namespace, message, staged, tiny_wheel, tiny_metrics, fake_hub, hub_env, tmp_path
):
    folder = staged
    if namespace != "alice":  # a card staged for the namespace it is pushed to
        folder = stage_hub(tiny_wheel, tmp_path / "hub" / "x", tiny_metrics, namespace, "en_biomed_spancat",
                           "cc-by-3.0").path
    token = {"no token": None, "bad token": "hf_" + secrets.token_hex(16), "read-only token": TOKEN_READ,
             "namespace": TOKEN_ORG}.get(case, TOKEN)
    if token:
        hub_env["HF_TOKEN"] = token
    if case == "unreachable":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        hub_env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    if case == "foreign files":
        fake_hub.seed_repo("alice/en_biomed_spancat", {"README.md": FOREIGN_CARD, "pytorch_model.bin": b"\0" * 8})
    if case == "offline":
        hub_env["HF_HUB_OFFLINE"] = "1"
    before = _tree_hash(folder)
    r = push(folder, hub_env, namespace)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1
    assert message in out, out
    assert "Nothing in" in out and "was changed" in out
    assert "Traceback" not in out
    assert _tree_hash(folder) == before
    for repo in fake_hub.repos.values():  # nothing was committed anywhere
        assert all(c["author"] == "someone-else" for c in repo.commits)
    _assert_no_token_anywhere(r, fake_hub, folder, tmp_path, tokens=[t for t in (token, TOKEN) if t])


def test_push_refuses_a_card_staged_for_another_repo(staged, fake_hub, hub_env):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "biomed-lab")
    out = " ".join(r.stdout.split())
    assert r.returncode == 1
    assert "the card was staged for another repo" in out
    assert "re-run stage-hub with --namespace biomed-lab --repo en_biomed_spancat" in out
    assert fake_hub.log == []  # refused before any request


def test_push_refuses_a_folder_stage_hub_did_not_write(staged, fake_hub, hub_env, tmp_path):
    folder = tmp_path / "staged"
    shutil.copytree(staged, folder)
    (folder / "notes.txt").write_text("x")
    hub_env["HF_TOKEN"] = TOKEN
    r = push(folder, hub_env)
    assert r.returncode == 1
    assert "found README.md, en_biomed_spancat-0.0.1-py3-none-any.whl, notes.txt" in " ".join(r.stdout.split())
    r = push(folder, hub_env, "alice", "en_biomed_spancat", "--private", "maybe")
    assert r.returncode == 1 and "--private takes true or false, not 'maybe'" in " ".join(r.stdout.split())


def test_weasel_stage_hub_then_push(tiny_wheel, tiny_metrics, tiny_threshold, fake_hub, hub_env, tmp_path):
    """`weasel run stage-hub` and `weasel run push` as project.yml declares them, in a copy of the
    project holding the tiny wheel and its metrics where the earlier commands would have put them."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project / "project.yml")
    (project / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    (project / "components").symlink_to(ROOT / "components", target_is_directory=True)  # deps name the code
    dist = project / "packages" / f"en_biomed_spancat-{VERSION}" / "dist"
    dist.mkdir(parents=True)
    shutil.copy(tiny_wheel, dist / WHEEL_NAME)
    (project / "metrics").mkdir()
    shutil.copy(tiny_metrics, project / "metrics" / "package.json")
    shutil.copy(tiny_threshold, project / "metrics" / "threshold.json")
    # the model the wheel was built from: stage-hub checks the wheel is its
    shutil.copytree(tiny_wheel.parents[3] / "model", project / "training" / "model-tuned")
    weasel = str(Path(PY).parent / "weasel")
    overrides = ["--vars.version", VERSION, "--vars.hub_namespace", "alice"]
    hub_env["HF_TOKEN"] = TOKEN
    r = subprocess.run([weasel, "run", "stage-hub", str(project), *overrides], cwd=project, env=hub_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    staged_dir = project / "hub" / "en_biomed_spancat"
    assert sorted(p.name for p in staged_dir.iterdir()) == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert fake_hub.log == []  # staging made no request
    # project.yml hands the threshold record to stage-hub: the card says the dev scores are optimistic
    assert "**These scores are optimistic.**" in (staged_dir / CARD_NAME).read_text(encoding="utf8")
    r = subprocess.run([weasel, "run", "push", str(project), *overrides], cwd=project, env=hub_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    repo = fake_hub.repos["alice/en_biomed_spancat"]
    assert repo.private is True  # vars.hub_private
    assert repo.commits[-1]["message"] == "Upload en_biomed_spancat"  # vars.hub_commit_message
    assert repo.commits[-1]["files"] == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    _assert_no_token_anywhere(r, fake_hub, project / "hub", tmp_path)


# --- the download path, as a user takes it --------------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory) -> Path:
    """One venv for the session: current pip, then torch==2.13.0 (the CPU build this machine has)."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([PY, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for args in (["install", "--upgrade", "pip"], ["install", "torch==2.13.0"]):
        r = subprocess.run([str(vpy), "-m", "pip", *args], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return vpy


@pytest.mark.slow
def test_wheel_installs_from_its_hub_url_with_current_pip(staged, fake_hub, hub_env, fresh_venv, tmp_path):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    assert r.returncode == 0, r.stdout + r.stderr
    _, body = parse_card((staged / CARD_NAME).read_text())
    card_url = re.search(r"pip install (\S+)", body).group(1)
    # the card's URL, served by the local Hub instead of huggingface.co
    url = card_url.replace("https://huggingface.co", fake_hub.url)
    user_dir = tmp_path / "elsewhere"  # no project folder on the path
    user_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HF_TOKEN")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    pip = subprocess.run([str(fresh_venv), "-m", "pip", "--version"], capture_output=True, text=True)
    major = int(re.match(r"pip (\d+)", pip.stdout).group(1))
    assert major >= 26, pip.stdout
    # the renamed wheel spacy-huggingface-hub 0.0.10 uploads is refused by this pip, before any download
    bad = url.replace(WHEEL_NAME, "en_biomed_spancat-any-py3-none-any.whl")
    r = subprocess.run([str(fresh_venv), "-m", "pip", "install", bad], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid wheel filename" in r.stdout + r.stderr
    r = subprocess.run([str(fresh_venv), "-m", "pip", "install", url], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check = (
        "import sys, spacy\n"
        f"assert not any(p.startswith({str(ROOT)!r}) for p in sys.path if p), sys.path\n"
        "nlp = spacy.load('en_biomed_spancat')\n"
        "doc = nlp('BMP4 regulates limb patterning in mice.')\n"
        "group = doc.spans['sc']\n"
        "assert len(group.attrs['scores']) == len(group)\n"
        "print('loaded', nlp.meta['name'], nlp.meta['version'], nlp.pipe_names, len(group))\n"
    )
    env["HF_HUB_OFFLINE"] = "1"
    r = subprocess.run([str(fresh_venv), "-c", check], cwd=user_dir, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "loaded biomed_spancat 0.0.1 ['transformer', 'spancat']" in r.stdout
    # the project's package is not what made it load
    r = subprocess.run([str(fresh_venv), "-c", "import biomed_spancat"], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0


