"""The project's steps as weasel runs them: how long each took, and what each needs first.

Timing: weasel records no times. Every `python -m scripts.NAME` process appends
one line to `metrics/steps.jsonl` when it exits (`scripts/__init__.py` calls
`install_step_timer`): the module, a hash of its arguments (never the
arguments: a database URL may carry a password), start, end and seconds.
`command_times` matches those lines to the commands of weasel's
`project.lock`, whose `script` holds each command's lines as they ran, with
the variables filled in.

Dependencies: weasel checks a command's `deps` before running it and, for a
missing file, can only say "Maybe you forgot to run the 'weasel assets'
command". `missing_deps` says which command's `outputs` make each missing
file (or which variable names an input), so `weasel run check` can name the
step to run first.

Project library code: never imported by a packaged pipeline.
"""

import atexit
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "STEP_LOG",
    "STEP_LOG_ENV",
    "step_key",
    "record_step",
    "install_step_timer",
    "read_step_log",
    "script_keys",
    "command_times",
    "producers",
    "missing_deps",
    "run_first",
    "check_commands",
]

STEP_LOG = Path("metrics") / "steps.jsonl"
# Where the step log goes instead (a path), or "0" for no log
STEP_LOG_ENV = "BIOMED_STEP_LOG"


def step_key(module: str, args: Sequence[str]) -> str:
    """A stable id of one script call: the module and its arguments, hashed.

    module (str): The module run with `python -m`, e.g. "scripts.train".
    args (Sequence[str]): Its arguments, as the process received them.
    RETURNS (str): 16 hex digits.
    """
    return hashlib.sha256(json.dumps([module, *args]).encode("utf8")).hexdigest()[:16]


def record_step(log: Path, module: str, args: Sequence[str], start: float, end: float) -> None:
    """Append one timed script call to the step log (folders created).

    log (Path): The JSONL file.
    module (str): The module that ran.
    args (Sequence[str]): Its arguments (only their hash is written).
    start (float): Start, seconds since the epoch.
    end (float): End, likewise.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "module": module,
        "key": step_key(module, args),
        "start": round(start, 3),
        "end": round(end, 3),
        "seconds": round(end - start, 3),
    }
    with log.open("a", encoding="utf8") as f:
        f.write(json.dumps(line) + "\n")


def install_step_timer(start: Optional[float] = None) -> None:
    """Record this process in the step log when it exits successfully, if it runs a `scripts.*` module.

    Called when the `scripts` package is imported; does nothing for any other
    program (pytest importing a script, say), or when BIOMED_STEP_LOG is "0".

    start (Optional[float]): When the process started (default: now).
    """
    started = time.time() if start is None else start
    # Only a step that succeeded is timed: a refused or failed step made nothing for the
    # summary, and writes nothing (not even this log). sys.exit (msg.fail, click) and an
    # uncaught exception are how a step fails (scripts exit through sys.exit, not `raise SystemExit`).
    failed = {"code": None}
    real_exit, real_hook = sys.exit, sys.excepthook

    def _exit(code: Any = None) -> None:
        failed["code"] = code
        real_exit(code)

    def _hook(*exc_info: Any) -> None:
        failed["code"] = 1
        real_hook(*exc_info)

    sys.exit, sys.excepthook = _exit, _hook

    def _record() -> None:
        if failed["code"] not in (None, 0):
            return
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        module = getattr(spec, "name", "") or ""
        target = os.environ.get(STEP_LOG_ENV, str(STEP_LOG))
        if not module.startswith("scripts.") or target == "0":
            return
        try:
            record_step(Path(target), module, sys.argv[1:], started, time.time())
        except OSError:  # a read-only folder: the run matters more than its timing
            pass

    atexit.register(_record)


def read_step_log(path: Path) -> List[Dict[str, Any]]:
    """The step log's records, oldest first; unreadable lines are skipped.

    path (Path): The JSONL file (missing: no records).
    RETURNS (List[Dict[str, Any]]): module, key, start, end, seconds.
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and {"key", "seconds", "end"} <= set(rec):
            out.append(rec)
    return out


def script_keys(script: Iterable[str]) -> List[Optional[str]]:
    """The `step_key` of each line of a command's script (None: not `python -m scripts.X`).

    script (Iterable[str]): The lines as weasel ran them (project.lock's `script`).
    RETURNS (List[Optional[str]]): One key per line.
    """
    keys: List[Optional[str]] = []
    for line in script:
        tokens = shlex.split(line)
        if "-m" in tokens[:-1] and tokens[tokens.index("-m") + 1].startswith("scripts."):
            i = tokens.index("-m")
            keys.append(step_key(tokens[i + 1], tokens[i + 2 :]))
        else:
            keys.append(None)
    return keys


def command_times(lock: Dict[str, Any], records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """How long each command of weasel's lock took when it last ran.

    A command's time is the sum of the latest record of each of its script
    lines; it is None when a line has no record (run before the step log
    existed, or not a `python -m scripts.X` line).

    lock (Dict[str, Any]): project.lock, as read (command name -> entry with `script`).
    records (Sequence[Dict[str, Any]]): The step log (`read_step_log`).
    RETURNS (Dict[str, Dict[str, Any]]): name -> {"seconds": float or None,
        "finished": epoch seconds of its last line's end, or None}.
    """
    latest: Dict[str, Dict[str, Any]] = {}
    for rec in records:
        latest[rec["key"]] = rec
    out: Dict[str, Dict[str, Any]] = {}
    for name, entry in lock.items():
        if not isinstance(entry, dict):
            continue
        found = [latest.get(k) if k else None for k in script_keys(entry.get("script") or [])]
        if found and all(found):
            out[name] = {"seconds": sum(r["seconds"] for r in found), "finished": max(r["end"] for r in found)}
        else:
            out[name] = {"seconds": None, "finished": None}
    return out


def producers(config: Dict[str, Any]) -> Dict[str, str]:
    """Which command makes each file: every `outputs` and `outputs_no_cache` path.

    config (Dict[str, Any]): The project config, variables filled in (weasel's
        `load_project_config`).
    RETURNS (Dict[str, str]): path -> command name (the first command declaring it).
    """
    out: Dict[str, str] = {}
    for cmd in config.get("commands", []):
        for path in list(cmd.get("outputs", [])) + list(cmd.get("outputs_no_cache", [])):
            out.setdefault(_norm(path), cmd["name"])
    return out


def _norm(path: str) -> str:
    return os.path.normpath(path)


def _made_by(dep: str, made: Dict[str, str]) -> Optional[str]:
    """The command making `dep`, or a folder above it (a model directory's files)."""
    path = _norm(dep)
    while path and path != ".":
        if path in made:
            return made[path]
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return None


def missing_deps(
    config: Dict[str, Any], raw_config: Dict[str, Any], command: str, root: Path
) -> List[Tuple[str, str]]:
    """The deps of a command that do not exist, each with what makes it.

    config (Dict[str, Any]): The project config, variables filled in.
    raw_config (Dict[str, Any]): The same, variables not filled in (project.yml
        as written), to name the variable behind an input path.
    command (str): The command's name.
    root (Path): The project folder.
    RETURNS (List[Tuple[str, str]]): (path, remedy) pairs, the remedy being
        "weasel run NAME" for a file a command makes (the commands that make
        its own missing deps first, in order), "set vars.NAME" for an input a
        variable names, else "add it (it is an input of the project)".
    """
    commands = {c["name"]: c for c in config.get("commands", [])}
    raw_commands = {c["name"]: c for c in raw_config.get("commands", [])}
    if command not in commands:
        raise ValueError(f"no command '{command}' in project.yml (commands: {', '.join(commands)})")
    made = producers(config)
    out = []
    raw_deps = raw_commands.get(command, {}).get("deps", [])
    for i, dep in enumerate(commands[command].get("deps", [])):
        if (Path(root) / dep).exists():
            continue
        maker = _made_by(dep, made)
        if maker is not None and maker != command:
            chain = _chain(maker, commands, made, Path(root), seen={command})
            out.append((dep, "weasel run " + " && weasel run ".join(chain)))
            continue
        raw = raw_deps[i] if i < len(raw_deps) else ""
        var = raw[len("${vars.") : raw.index("}")] if raw.startswith("${vars.") and "}" in raw else None
        out.append((dep, f"set vars.{var} (in project.yml or --vars.{var} PATH)" if var else "add it (it is an input of the project)"))
    return out


def _chain(name: str, commands: Dict[str, Any], made: Dict[str, str], root: Path, seen: set) -> List[str]:
    """`name`, preceded by the commands that make its own missing deps, in run order."""
    seen = seen | {name}
    before: List[str] = []
    for dep in commands[name].get("deps", []):
        if (root / dep).exists():
            continue
        maker = _made_by(dep, made)
        if maker and maker not in seen:
            for step in _chain(maker, commands, made, root, seen):
                if step not in before:
                    before.append(step)
    return before + [name]


def run_first(config: Dict[str, Any], command: str, root: Path) -> List[str]:
    """The commands to run, in order, before `command` can: those making its missing deps,
    and theirs.

    config (Dict[str, Any]): The project config, variables filled in.
    command (str): The command's name.
    root (Path): The project folder.
    RETURNS (List[str]): Command names, in run order ([] when nothing is missing).
    """
    commands = {c["name"]: c for c in config.get("commands", [])}
    if command not in commands:
        raise ValueError(f"no command '{command}' in project.yml (commands: {', '.join(commands)})")
    return _chain(command, commands, producers(config), Path(root), seen=set())[:-1]


def check_commands(
    config: Dict[str, Any], raw_config: Dict[str, Any], root: Path, names: Optional[Sequence[str]] = None
) -> Dict[str, Dict[str, Any]]:
    """What several commands (all by default) need before they can run.

    RETURNS (Dict[str, Dict[str, Any]]): command -> {"missing": `missing_deps`,
        "run_first": `run_first`}; both empty: it can run now.
    """
    names = list(names) if names else [c["name"] for c in config.get("commands", [])]
    return {
        name: {"missing": missing_deps(config, raw_config, name, root), "run_first": run_first(config, name, root)}
        for name in names
    }
