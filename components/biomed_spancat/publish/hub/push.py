"""Pushing a staged folder to the Hugging Face Hub with huggingface_hub's API
(not spacy-huggingface-hub 0.0.10, which renames the wheel to a file name
current pip refuses, reads only `ents_*` scores into the model-index and
always creates public repos).

A push never makes data more visible than asked: a private push into an
existing public repo is refused before anything is uploaded (or, when asked,
the repo is made private first), and an existing private repo stays private.
Every request has a timeout; a failed push deletes the repo it created, or
says what it left behind.

Project library code: never imported by a loaded pipeline.
"""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Tuple
from urllib.parse import urlparse

from .card import install_url
from .inputs import CARD_NAME, CHART_NAME, PLACEHOLDER_NAMESPACE, HubError, package_name, read_wheel
from .stage import card_install_url, check_repo_part, check_staged

__all__ = ["DEFAULT_TIMEOUT", "PushResult", "private_install_command", "resolve_token", "push_folder"]

# Seconds to wait for the Hub's answer to one request (connecting: at most 10 s).
DEFAULT_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0


@dataclass
class PushResult:
    """What push_folder did on the Hub."""

    repo_id: str
    repo_url: str
    commit_url: str
    private: bool
    created: bool
    files: List[str] = field(default_factory=list)
    install_url: str = ""
    made_private: bool = False
    notes: List[str] = field(default_factory=list)


def private_install_command(repo_id: str, wheel_name: str) -> str:
    """How an account with access installs the wheel from a private repo: `hf download`
    reads the token from HF_TOKEN or the login cache, so it never appears on a command line."""
    return f'wheel="$(hf download {repo_id} {wheel_name})" && pip install "$wheel"'


def resolve_token() -> Tuple[Optional[str], str]:
    """The Hub token and where it came from ("HF_TOKEN", or the login cache path).

    RETURNS (Tuple[Optional[str], str]): The token (None when there is none) and its source.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_token

    token = get_token()
    if token is None:
        return None, ""
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return token, "the HF_TOKEN environment variable"
    return token, f"the login cache ({constants.HF_TOKEN_PATH})"


def _scrub(text: str, token: Optional[str]) -> str:
    return text.replace(token, "***") if token else text


def _redact_endpoint(endpoint: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", endpoint)


def _server_message(err: Exception) -> str:
    msg = getattr(err, "server_message", None) or ""
    if not msg:
        response = getattr(err, "response", None)
        try:
            msg = str(response.json().get("error", "")) if response is not None else ""
        except Exception:
            msg = ""
    return msg.strip()


def _status(err: Exception) -> Optional[int]:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _own_files(names: Iterable[str], package: str) -> List[str]:
    """The files of `names` that are not this project's (card, chart, its wheels, .gitattributes)."""
    wheel = re.compile(rf"^{re.escape(package)}-[^/]+\.whl$")
    return [n for n in names if n not in (CARD_NAME, CHART_NAME, ".gitattributes") and not wheel.match(n)]


def _use_timeouts(timeout: float) -> None:
    """Give every request huggingface_hub makes a timeout (it sets none on API calls).

    Uploads go through the Hub's LFS API over the same sessions: the Xet
    transfer (hf_xet, native code) is switched off for the push, since its
    requests cannot be given this timeout.
    """
    import requests
    from huggingface_hub import configure_http_backend, constants
    from huggingface_hub.utils._http import UniqueRequestIdAdapter

    constants.HF_HUB_DISABLE_XET = True

    class TimeoutAdapter(UniqueRequestIdAdapter):
        def send(self, request, *args, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (min(CONNECT_TIMEOUT, timeout), timeout)
            return super().send(request, *args, **kwargs)

    def factory() -> "requests.Session":
        session = requests.Session()
        session.mount("http://", TimeoutAdapter())
        session.mount("https://", TimeoutAdapter())
        return session

    configure_http_backend(backend_factory=factory)


def _describe(err: Exception, step: str, where: str, repo_id: str, timeout: float) -> str:
    """One sentence for a failed request, whatever huggingface_hub wrapped it in."""
    import requests

    chain = [err, err.__cause__, err.__context__]
    for e in chain:
        if isinstance(e, requests.Timeout) and not isinstance(e, requests.ConnectTimeout):
            return (f"the Hub at {where} did not answer within {timeout:g} s while {step} "
                    f"({type(e).__name__}); it may be overloaded or a proxy may hold the connection")
        if isinstance(e, (requests.ConnectionError, requests.ConnectTimeout)):
            return (f"cannot reach the Hub at {where} while {step} ({type(e).__name__}); check the network, "
                    "a proxy or HF_ENDPOINT, then run push again")
    if isinstance(err, requests.HTTPError):
        status = _status(err)
        hint = {
            401: "the token was rejected; set a valid write token",
            403: f"the token cannot write to {repo_id}; give it write access",
        }.get(status or 0, "see the server's message")
        return f"the Hub at {where} answered HTTP {status} while {step}: {_server_message(err) or type(err).__name__}; {hint}"
    cause = err.__cause__ or err.__context__
    return f"push failed while {step}: {type(err).__name__}: {err}" + (f" ({type(cause).__name__}: {cause})" if cause else "")


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = True,
    make_private: bool = False,
    message: str = "Upload en_biomed_spancat",
    endpoint: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PushResult:
    """Upload a staged folder to the Hub with huggingface_hub's API.

    The token comes from HF_TOKEN or the login cache and is never printed,
    logged or written; every failure raises HubError with the reason, what
    was left on the Hub and what to do, and leaves `folder` untouched.

    folder (Path): The folder stage_hub wrote.
    repo_id (str): "<namespace>/<repo>"; the placeholder namespace is refused.
    private (bool): The visibility asked for. A new repo is created so. An
        existing public repo is refused when private is asked (nothing is
        uploaded), unless make_private; an existing private repo stays private.
    make_private (bool): Change an existing public repo to private before uploading.
    message (str): The commit message.
    endpoint (Optional[str]): The Hub URL; None reads HF_ENDPOINT (huggingface.co by default).
    timeout (float): Seconds to wait for each answer of the Hub.
    RETURNS (PushResult): The repo, commit and uploaded files.
    """
    import requests
    from huggingface_hub import CommitOperationAdd, HfApi, configure_http_backend, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    namespace, _, name = repo_id.partition("/")
    if namespace == PLACEHOLDER_NAMESPACE:
        raise HubError(
            f"--namespace '{PLACEHOLDER_NAMESPACE}' is the placeholder of project.yml, not a Hub account: set "
            "vars.hub_namespace to your Hub user or organisation (e.g. `weasel run stage-hub --vars.hub_namespace "
            "NAME`, then `weasel run push --vars.hub_namespace NAME`)"
        )
    check_repo_part(namespace, "namespace")
    check_repo_part(name, "repo")
    if not timeout or timeout <= 0:
        raise HubError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    staged = check_staged(folder, repo_id)
    package = package_name(read_wheel(staged.wheel)[0])
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    where = _redact_endpoint(endpoint)
    if constants.HF_HUB_OFFLINE:
        raise HubError("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: pushing needs the Hub; unset it for this command")
    token, source = resolve_token()
    if token is None:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN to a token with write access, or log in once with "
            "`hf auth login` (the token is read from there; it is never printed or written by this project)"
        )
    repo_url = f"{where}/{repo_id}"
    notes: List[str] = []
    card_url = card_install_url(staged.path)
    if urlparse(card_url).netloc != urlparse(endpoint).netloc:
        notes.append(
            f"the card's install line names {urlparse(card_url).netloc}, but this push went to "
            f"{urlparse(where).netloc}: re-run stage-hub with the same HF_ENDPOINT so the card names the host it is on"
        )
    api = HfApi(endpoint=endpoint, token=token)
    _use_timeouts(timeout)
    step = "checking the token"
    created = made_private = committing = False
    try:
        try:
            who = api.whoami()
        except requests.HTTPError as err:
            if _status(err) == 401:
                raise HubError(
                    f"the Hub at {where} rejected the token from {source} (401 Unauthorized): it is invalid, "
                    "expired or revoked; create a new one with write access and set HF_TOKEN or run `hf auth login`"
                ) from None
            raise
        user = str(who.get("name", "?"))
        orgs = [str(o.get("name")) for o in who.get("orgs") or [] if isinstance(o, dict)]
        role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise HubError(f"the token from {source} (user {user}) is read-only; pushing needs a write token")

        step = f"creating {repo_id}"
        try:
            api.create_repo(repo_id, private=private, repo_type="model", exist_ok=False)
            created = True
        except requests.HTTPError as err:
            status = _status(err)
            if status == 403:
                can = ", ".join([user] + orgs)
                raise HubError(
                    f"the Hub refused to create {repo_id} (403 Forbidden): user {user} cannot write to namespace "
                    f"'{namespace}' (namespaces this token can use: {can}). Set --namespace to one of them, or give "
                    f"the token write access to '{namespace}'. Server said: {_server_message(err) or 'forbidden'}"
                ) from None
            if status != 409:
                raise
            step = f"reading the existing {repo_id}"
            info = api.model_info(repo_id)
            files = [s.rfilename for s in info.siblings or []]
            foreign = _own_files(files, package)
            card_name = getattr(info.card_data, "model_name", None) if info.card_data is not None else None
            if CARD_NAME in files and card_name != package:
                foreign.insert(0, f"{CARD_NAME} (a card for {card_name or 'another model'})")
            if foreign:
                raise HubError(
                    f"{repo_id} already exists and holds files this project did not stage: "
                    f"{', '.join(foreign)}. Pushing would mix our card and wheel with another owner's files; "
                    "choose another --repo, or remove those files on the Hub first"
                )
            if private and not info.private:
                if not make_private:
                    raise HubError(
                        f"{repo_id} already exists and is PUBLIC, but this push asks for a private repo "
                        "(--private true): uploading would publish the model. Push to another --repo, make "
                        f"{repo_id} private on the Hub ({repo_url}/settings) or with --make-private (push "
                        "changes it before uploading), or pass --private false to publish on purpose"
                    )
                step = f"making {repo_id} private"
                api.update_repo_settings(repo_id, private=True, repo_type="model")
                if not api.model_info(repo_id).private:
                    raise HubError(f"the Hub at {where} still reports {repo_id} as public after the change to "
                                   "private; nothing was uploaded")
                made_private = True
            elif info.private and not private:
                notes.append(
                    f"{repo_id} is private and stays private: --private false only sets the visibility of a new "
                    "repo; change it on the Hub if you mean to publish"
                )
            private = private or bool(info.private)

        step = f"uploading to {repo_id}"
        committing = True
        ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
               for p in (staged.card, staged.wheel, staged.chart)]
        commit = api.create_commit(repo_id, operations=ops, commit_message=message, repo_type="model")
    except HubError as err:
        raise HubError(_scrub(str(err) + _left_behind(api, repo_id, repo_url, created, made_private, committing),
                              token)) from None
    except OfflineModeIsEnabled:
        raise HubError("HF_HUB_OFFLINE is set: pushing needs the Hub; unset it for this command") from None
    except Exception as err:  # requests errors, and what huggingface_hub wraps them in (e.g. the LFS step)
        detail = _describe(err, step, where, repo_id, timeout)
        raise HubError(_scrub(detail + _left_behind(api, repo_id, repo_url, created, made_private, committing),
                              token)) from None
    finally:
        configure_http_backend()
    return PushResult(
        repo_id=repo_id,
        repo_url=repo_url,
        commit_url=str(commit.commit_url),
        private=private,
        created=created,
        files=staged.files,
        install_url=install_url(repo_id, staged.wheel.name, where),
        made_private=made_private,
        notes=notes,
    )


def _left_behind(api, repo_id: str, repo_url: str, created: bool, made_private: bool, committing: bool) -> str:
    """What a failed push leaves on the Hub, after deleting the repo it created (if it can)."""
    if created:
        try:
            api.delete_repo(repo_id, repo_type="model", missing_ok=True)
            if api.repo_exists(repo_id, repo_type="model"):
                raise RuntimeError("the repo is still there after the deletion")
            return f". Cleaned up: the repo {repo_id} that this push created was deleted; nothing of it is left on the Hub"
        except Exception as err:
            return (f". Left behind: the repo {repo_id}, created by this push (with the visibility asked for), "
                    f"which may hold part or all of the upload; deleting it failed ({type(err).__name__}: {err}). Delete it "
                    f"at {repo_url}/settings, or run push again to complete it")
    extra = f"; {repo_id} was made private by this push and stays private" if made_private else ""
    if committing:
        return (f". Left behind: {repo_id} existed before this push; the commit may or may not have been applied: "
                f"check {repo_url}/commits/main{extra}")
    return f". Nothing was uploaded{extra}"
