"""A step's outputs as one unit, written by one run at a time.

A step declares the paths it writes (files or folders) and writes them into a
fresh staging folder; only when everything is on disk is the unit published:

1. the staging folder gets a manifest (every file's SHA-256) and is renamed to
   `<base>/.outputs/<unit>.commit` in one atomic rename: the commit point;
2. each entry is renamed into place (a folder entry swaps with the old one),
   declared entries this run did not write are removed (nothing stale stays);
3. the manifest is renamed to `<base>/.outputs/<unit>.json` and the commit
   folder removed.

A run killed during step 2 leaves the commit folder, which holds only whole
files: the next writer of the unit, or the next step that checks an input with
`verify_input`, finishes the renames first (roll forward), so a mix of two runs
is never trusted. A run killed before step 1 leaves only a staging folder,
removed by the next writer. The whole run holds an exclusive `fcntl.flock` on
`<base>/.outputs/<unit>.lock`: a second writer is refused with a message naming
the holder, and the kernel releases the lock of a killed run. Steps that read
the outputs take the same lock shared while they check them, so any number
can read at once and none reads while a writer holds it.

`verify_input(path)` checks a path against the manifest that lists it (if
any): a changed, truncated or half-published output is refused, naming the
step that wrote it.
"""

import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

__all__ = [
    "OutputsError",
    "OutputsBusy",
    "StepOutputs",
    "verify_input",
    "tree_digest",
    "file_digest",
    "OUTPUTS_DIR",
]

PathLike = Union[str, Path]
OUTPUTS_DIR = ".outputs"
MANIFEST = "MANIFEST.json"
# Test hooks: kill (SIGKILL) or hold the run at a named checkpoint.
KILL_ENV = "BIOMED_SPANCAT_KILL_AT"
HOLD_ENV = "BIOMED_SPANCAT_HOLD_AT"  # "checkpoint:flagfile": touch flagfile.reached, wait for flagfile
_HELD: Dict[str, int] = {}  # lock files this process holds -> depth


class OutputsError(RuntimeError):
    """An output that cannot be trusted or written; the message says which and what to do."""


class OutputsBusy(OutputsError):
    """Another run holds the unit's lock."""


def checkpoint(name: str) -> None:
    """A named point of a run, where tests kill it or hold it (see KILL_ENV, HOLD_ENV)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    hold = os.environ.get(HOLD_ENV, "")
    point, _, flag = hold.partition(":")
    if flag and point == name:
        Path(flag + ".reached").touch()
        deadline = time.monotonic() + 120  # a hang guard, not a timing
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> Dict[str, str]:
    """relative path -> SHA-256 of every file under `folder` (links followed)."""
    return {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tree_digest(folder: PathLike) -> str:
    """One SHA-256 for a folder: its files' relative paths and contents.

    folder (PathLike): The folder (e.g. a pipeline directory).
    RETURNS (str): The hex digest; equal folders give equal digests.
    """
    h = hashlib.sha256()
    for rel, digest in _files(Path(folder)).items():
        h.update(f"{rel}\0{digest}\n".encode("utf8"))
    return h.hexdigest()


def _describe(path: Path) -> Dict[str, Any]:
    if path.is_dir():
        files = _files(path)
        h = hashlib.sha256("".join(f"{r}\0{d}\n" for r, d in files.items()).encode("utf8"))
        return {"type": "dir", "sha256": h.hexdigest(), "files": files}
    return {"type": "file", "sha256": file_digest(path), "bytes": path.stat().st_size}


def _fsync_tree(path: Path) -> None:
    items = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for item in items:
        with open(item, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(path if path.is_dir() else path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unit_name(step: str, entries: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(entries)).encode("utf8")).hexdigest()[:8]
    return f"{step}-{digest}"


class _Lock:
    """A non-blocking flock on a lock file: exclusive for the writer (who is written
    into it), shared for readers, so that any number of steps can check an
    input at once while no writer can replace it under them."""

    def __init__(self, path: Path, step: str, what: str, reader: bool = False, shared: Optional[bool] = None) -> None:
        # reader: checks inputs (a read-only copy needs no lock); shared: takes the
        # shared lock, by default a reader's (a reader that finishes a killed run's
        # publication writes, so it takes the exclusive one)
        self.path, self.step, self.what, self.reader = path, step, what, reader
        self.shared = reader if shared is None else shared
        self.fd: Optional[int] = None

    def __enter__(self) -> "_Lock":
        key = str(self.path.resolve())
        if key in _HELD:  # this process already holds it (a reader inside the writer)
            _HELD[key] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            if self.reader and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                _HELD[key] = 1  # a read-only copy of the outputs: nobody can be writing them here
                return self
            raise
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 4096).decode("utf8", "replace").strip()
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputsBusy(self._busy(holder)) from None
        self.fd = fd
        _HELD[key] = 1
        if self.shared:  # readers share the lock and leave the writer's record alone
            return self
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.write(fd, json.dumps({"step": self.step, "pid": os.getpid(), "started": started}).encode("utf8"))
        return self

    def _busy(self, holder: str) -> str:
        """Why the lock was refused: a writer holds it (named from its record), or only readers do."""
        try:
            info = json.loads(holder)
            who = f"`{info['step']}` (pid {info['pid']}, started {info['started']})"
        except (ValueError, KeyError, TypeError):
            who = None
        if who is None and not self.shared:  # no writer's record: steps are reading it
            return (
                f"{self.what} is being read by another run (a step that uses it as input): refusing to "
                f"replace it under that run. Wait for it to finish (or stop it) and run again; a killed "
                f"run releases the lock by itself ({self.path})."
            )
        return (
            f"{self.what} is being written by {who or 'another run'}: refusing a second writer, whose files "
            f"would mix with its. Wait for it to finish (or stop it) and run again; a killed "
            f"run releases the lock by itself ({self.path})."
        )

    def __exit__(self, *exc: Any) -> None:
        key = str(self.path.resolve())
        _HELD[key] -= 1
        if _HELD[key] == 0:
            del _HELD[key]
            if self.fd is not None:
                if not self.shared:
                    os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
                self.fd = None


class StepOutputs:
    """The outputs of one run of a step, published as one unit.

    Use as a context manager: entering takes the lock (or raises OutputsBusy),
    finishes a publication a killed run left half done, and removes the
    staging folders of dead runs; `path(output)` gives where to write each
    output; leaving the block without an error publishes them all at once;
    leaving it with an error removes the staging folder and leaves the
    previous outputs as they were (or, with `withdraw_on_error`, removes them:
    for outputs that must not outlive a failed rebuild, such as a wheel).

    step (str): The step's name, for messages (e.g. "convert").
    outputs (Sequence[PathLike]): Every path the step may write (files or
        folders); declared paths it does not write this run are removed when
        it publishes. They must not be nested in each other.
    withdraw_on_error (bool): On an error, also remove the published outputs.
    """

    def __init__(self, step: str, outputs: Sequence[PathLike], withdraw_on_error: bool = False) -> None:
        if not outputs:
            raise ValueError("a step declares at least one output")
        paths = [Path(os.path.abspath(p)) for p in outputs]
        for p in paths:
            if p.exists() and not p.is_file() and not p.is_dir():
                raise OutputsError(f"{p}: exists and is neither a file nor a folder")
        self.base = Path(os.path.commonpath([p.parent for p in paths]))
        self.entries = [p.relative_to(self.base).as_posix() for p in paths]
        self.step = step
        self.unit = _unit_name(step, self.entries)
        self.meta_dir = self.base / OUTPUTS_DIR
        self.withdraw_on_error = withdraw_on_error
        self.staging: Optional[Path] = None
        self._lock = _Lock(self.meta_dir / f"{self.unit}.lock", step, _shown(paths))

    # -- writing ---------------------------------------------------------------------------
    def __enter__(self) -> "StepOutputs":
        for p in self.entries:
            if (self.base / p).parent.exists() and not (self.base / p).parent.is_dir():
                raise OutputsError(f"{(self.base / p).parent}: is a file, not a folder to write into")
        try:
            self.meta_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise OutputsError(f"{self.base}: cannot write here ({err.strerror})") from None
        self._lock.__enter__()
        try:
            checkpoint("locked")
            _roll_forward(self.meta_dir / f"{self.unit}.commit", self.base)
            self._clean_stale()
            self.staging = Path(tempfile.mkdtemp(prefix=f"{self.unit}.tmp-", dir=self.meta_dir))
            os.chmod(self.staging, 0o755)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def path(self, output: PathLike) -> Path:
        """Where to write `output` (one of the declared paths) during the run."""
        rel = Path(os.path.abspath(output)).relative_to(self.base).as_posix()
        if rel not in self.entries or self.staging is None:
            raise ValueError(f"{output}: not a declared output of {self.step}, or the unit is not open")
        target = self.staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._publish()
            elif self.withdraw_on_error:
                self._withdraw()
        finally:
            if self.staging is not None and self.staging.exists():
                shutil.rmtree(self.staging, ignore_errors=True)
            self._lock.__exit__(None, None, None)

    def _publish(self) -> None:
        assert self.staging is not None
        written = {rel: _describe(self.staging / rel) for rel in self.entries if (self.staging / rel).exists()}
        if not written:
            raise OutputsError(f"{self.step} wrote none of its outputs ({', '.join(self.entries)})")
        manifest = {
            "step": self.step,
            "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "entries": self.entries,
            "outputs": written,
        }
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf8")
        _fsync_tree(self.staging)
        checkpoint("staged")
        commit = self.meta_dir / f"{self.unit}.commit"
        os.rename(self.staging, commit)  # the commit point
        _fsync_dir(self.meta_dir)
        self.staging = None
        checkpoint("committed")
        _roll_forward(commit, self.base)

    def _withdraw(self) -> None:
        for rel in self.entries:
            _remove(self.base / rel)
        (self.meta_dir / f"{self.unit}.json").unlink(missing_ok=True)

    def _clean_stale(self) -> None:
        """Remove what dead runs of this unit left: staging folders, and the
        hidden temporary files of older writers beside the outputs."""
        for tmp in self.meta_dir.glob(f"{self.unit}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for rel in self.entries:
            target = self.base / rel
            if target.parent.is_dir():
                for tmp in target.parent.glob(f".{target.name}.*.tmp"):
                    _remove(tmp)
                _remove(target.parent / f"{target.name}.tmp")


def _shown(paths: List[Path]) -> str:
    cwd = Path.cwd()
    shown = []
    for p in paths:
        try:
            shown.append(str(p.relative_to(cwd)))
        except ValueError:
            shown.append(str(p))
    return ", ".join(shown)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _roll_forward(commit: Path, base: Path) -> None:
    """Finish (or redo) a publication from its commit folder; idempotent."""
    if not commit.is_dir():
        return
    trash = commit.parent / (commit.name + ".trash")
    if not (commit / MANIFEST).exists():  # published; killed before the clean-up
        shutil.rmtree(commit)
        shutil.rmtree(trash, ignore_errors=True)
        return
    manifest = json.loads((commit / MANIFEST).read_text(encoding="utf8"))
    for rel in manifest["entries"]:
        src, dst = commit / rel, base / rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            if (dst.is_dir() and not dst.is_symlink()) or (src.is_dir() and (dst.exists() or dst.is_symlink())):
                trash.mkdir(exist_ok=True)
                os.rename(dst, tempfile.mkdtemp(dir=trash) + "/old")
            os.replace(src, dst)
            checkpoint(f"moved:{rel}")
        elif rel not in manifest["outputs"]:
            _remove(dst)  # declared, not written this run: an older run's, stale
    _fsync_dir(base)
    os.replace(commit / MANIFEST, commit.parent / (commit.name[: -len(".commit")] + ".json"))
    _fsync_dir(commit.parent)
    checkpoint("published")
    shutil.rmtree(commit)
    shutil.rmtree(trash, ignore_errors=True)


def _manifests_for(path: Path) -> Iterator[Path]:
    """Manifests in `path`'s ancestors' .outputs folders (nearest first)."""
    for folder in list(path.parents)[:6]:
        meta_dir = folder / OUTPUTS_DIR
        if meta_dir.is_dir():
            yield from sorted(meta_dir.glob("*.commit"))  # half-published units first
            yield from sorted(meta_dir.glob("*.json"))


def verify_input(path: PathLike) -> Optional[str]:
    """Check an input against the manifest of the step that wrote it.

    A half-published unit is first finished (under its lock). A path no
    manifest lists (a user's own file) is not checked.

    path (PathLike): The input file or folder.
    RETURNS (Optional[str]): The step that wrote it, or None when no manifest lists it.
    RAISES (OutputsError): It differs from what its step published, or is being written.
    """
    path = Path(os.path.abspath(path))
    for found in _manifests_for(path):
        if found.suffix == ".commit":  # a killed run's publication: finish it first
            if not (found / MANIFEST).exists():
                continue  # already published; its writer's next run removes the folder
            unit = found.name[: -len(".commit")]
            base = found.parent.parent
            rel_entries = json.loads((found / MANIFEST).read_text(encoding="utf8"))["entries"]
            if not any(_within(path, base / rel) for rel in rel_entries):
                continue
            step = json.loads((found / MANIFEST).read_text(encoding="utf8"))["step"]
            with _Lock(found.parent / f"{unit}.lock", step, _shown([path]), reader=True, shared=False):
                _roll_forward(found, base)
            return verify_input(path)
        try:
            manifest = json.loads(found.read_text(encoding="utf8"))
            outputs = manifest["outputs"]
        except (ValueError, KeyError, TypeError):
            continue
        base = found.parent.parent
        for rel, info in outputs.items():
            entry = base / rel
            if not _within(path, entry):
                continue
            lock = found.parent / (found.name[: -len(".json")] + ".lock")
            with _Lock(lock, manifest["step"], _shown([path]), reader=True):
                _check(path, entry, info, manifest)
            return manifest["step"]
    return None


def _within(path: Path, entry: Path) -> bool:
    return path == entry or entry in path.parents


def _check(path: Path, entry: Path, info: Dict[str, Any], manifest: Dict[str, Any]) -> None:
    step, when, shown = manifest["step"], manifest["written"], _shown([path])
    redo = f"run `{step}` again"
    if not path.exists():
        raise OutputsError(f"{shown}: missing, though `{step}` published it at {when}; {redo}")
    if path.is_file():
        inner = path.relative_to(entry).as_posix() if path != entry else ""
        wanted = info["sha256"] if info["type"] == "file" else info["files"].get(inner)
        if file_digest(path) != wanted:
            raise OutputsError(
                f"{shown}: not the file `{step}` published at {when} (its SHA-256 differs: changed, "
                f"truncated or from another run); {redo}"
            )
        return
    inner = path.relative_to(entry).as_posix() if path != entry else ""
    wanted = {r: d for r, d in info.get("files", {}).items() if not inner or r.startswith(inner + "/")}
    actual = {(f"{inner}/{r}" if inner else r): d for r, d in _files(path).items()}
    if actual != wanted:
        differ = sorted(set(actual.items()) ^ set(wanted.items()))
        raise OutputsError(
            f"{shown}: not what `{step}` published at {when} ({differ[0][0]} differs: changed, "
            f"truncated or from another run); {redo}"
        )
