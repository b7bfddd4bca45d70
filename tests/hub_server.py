"""A local stand-in for the Hugging Face Hub, on 127.0.0.1, for the push and
download tests.

It answers the endpoints huggingface_hub 0.36 calls to upload a folder
(whoami-v2, repos/create, model info, preupload, the LFS batch API with the
"basic" transfer and its upload + verify actions, commit) and serves
`<repo>/resolve/<revision>/<path>` for downloads, plus repo settings
(visibility) and repo deletion. `hang` names endpoints that do their work and
then never answer (a Hub that accepts a commit and hangs), until `stop()` or
`reset()`. Point a client at it with
HF_ENDPOINT, which huggingface_hub reads once, at import: so set it in the
environment of a subprocess, before huggingface_hub is imported.

Every request is logged (method, path, whether it carried a token, the body
size) and every committed file is kept in memory, so tests can check what
was uploaded; the server never writes anything to disk.
"""
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlparse

import yaml

__all__ = ["FakeHub", "HubUser", "HubRepo"]

_BAD_TOKEN = "Invalid credentials in Authorization header"


@dataclass
class HubUser:
    name: str
    orgs: List[str] = field(default_factory=list)
    role: str = "write"

    @property
    def namespaces(self) -> List[str]:
        return [self.name] + list(self.orgs)


@dataclass
class HubRepo:
    repo_id: str
    private: bool
    files: Dict[str, bytes] = field(default_factory=dict)
    commits: List[Dict[str, Any]] = field(default_factory=list)
    sha: str = "0" * 40


@dataclass
class Logged:
    method: str
    path: str
    authed: bool
    status: int = 0


class FakeHub:
    """A threaded HTTP server speaking the subset of the Hub API an upload needs.

    users (Dict[str, HubUser]): token -> user; any other token gets 401.
    """

    def __init__(self, users: Dict[str, HubUser]):
        self.users = dict(users)
        self.repos: Dict[str, HubRepo] = {}
        self.blobs: Dict[str, bytes] = {}
        self.log: List[Logged] = []
        self.lock = threading.Lock()
        # Endpoint names (the handler method: "commit", "delete_repo", ...) that never answer.
        self.hang: set = set()
        # The "transfers" each LFS batch request offered (e.g. ["basic", "multipart"], "xet" when used).
        self.lfs_transfers: List[List[str]] = []
        self.release = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- state helpers for tests ----------------------------------------
    def reset(self) -> None:
        self.release.set()  # let hung handlers finish
        with self.lock:
            self.repos.clear()
            self.blobs.clear()
            self.log.clear()
            self.lfs_transfers.clear()
            self.hang = set()
            self.release = threading.Event()

    def seed_repo(self, repo_id: str, files: Dict[str, bytes], private: bool = False) -> HubRepo:
        """Create a repo that already holds `files` (e.g. another owner's model)."""
        with self.lock:
            repo = HubRepo(repo_id, private, dict(files))
            repo.commits.append({"message": "seed", "files": sorted(files), "author": "someone-else"})
            repo.sha = hashlib.sha1(repr(sorted(files)).encode()).hexdigest()
            self.repos[repo_id] = repo
            return repo

    def paths(self) -> List[Tuple[str, str]]:
        return [(e.method, e.path) for e in self.log]


def _git_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _card_data(readme: Optional[bytes]) -> Optional[Dict[str, Any]]:
    if not readme:
        return None
    m = re.match(rb"^---\n(.*?)\n---\n", readme, flags=re.S)
    if not m:
        return None
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def validate_card_data(data: Dict[str, Any]) -> List[str]:
    """Errors in a model card's metadata, for the keys the Hub validates."""
    errors = []
    if not isinstance(data.get("license"), str) or (data["license"] == "other" and not data.get("license_name")):
        errors.append('"license" must be a licence id (or "other" with "license_name")')
    if "base_model" in data and not re.match(r"^[\w.-]+/[\w.-]+$", str(data["base_model"])):
        errors.append('"base_model" must be a model id on the Hub')
    if not isinstance(data.get("tags", []), list):
        errors.append('"tags" must be a list')
    for i, entry in enumerate(data.get("model-index") or []):
        if not isinstance(entry, dict) or not entry.get("name"):
            errors.append(f'"model-index[{i}].name" is required')
            continue
        for j, result in enumerate(entry.get("results") or []):
            where = f"model-index[{i}].results[{j}]"
            if not (result.get("task") or {}).get("type"):
                errors.append(f'"{where}.task.type" is required')
            dataset = result.get("dataset") or {}
            if not dataset.get("type") or not dataset.get("name"):
                errors.append(f'"{where}.dataset" needs "type" and "name"')
            for k, metric in enumerate(result.get("metrics") or []):
                if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                    errors.append(f'"{where}.metrics[{k}]" needs "type" and a numeric "value"')
    return errors


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

    # -- plumbing ----------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _user(self) -> Tuple[Optional[HubUser], bool]:
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None and auth.startswith("Basic "):
            token = base64.b64decode(auth[6:]).decode().partition(":")[2]
        return self.fake.users.get(token or ""), bool(token)

    def _send(self, status: int, payload: Any = None, headers: Optional[Dict[str, str]] = None,
              raw: Optional[bytes] = None, head: bool = False) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self._entry.status = status

    def _error(self, status: int, message: str, code: Optional[str] = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _route(self, method: str) -> None:
        path = unquote(urlparse(self.path).path)
        user, authed = self._user()
        self._entry = Logged(method, path, authed)
        with self.fake.lock:
            self.fake.log.append(self._entry)
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        if authed and user is None:
            return self._error(401, _BAD_TOKEN)
        routes = [
            ("GET", r"^/api/whoami-v2$", self.whoami),
            ("POST", r"^/api/repos/create$", self.create),
            ("GET", r"^/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?$", self.info),
            ("POST", r"^/api/validate-yaml$", self.validate_yaml),
            ("POST", r"^/api/models/([^/]+/[^/]+)/preupload/([^/]+)$", self.preupload),
            ("POST", r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$", self.lfs_batch),
            ("PUT", r"^/__lfs/([0-9a-f]{64})$", self.lfs_put),
            ("POST", r"^/__lfs/verify$", self.lfs_verify),
            ("POST", r"^/api/models/([^/]+/[^/]+)/commit/([^/]+)$", self.commit),
            ("GET", r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.resolve),
            ("HEAD", r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.resolve),
            ("PUT", r"^/api/models/([^/]+/[^/]+)/settings$", self.settings),
            ("DELETE", r"^/api/repos/delete$", self.delete_repo),
        ]
        for m, pattern, fn in routes:
            match = re.match(pattern, path)
            if m == method and match:
                if fn.__name__ in self.fake.hang:
                    return self._hang(fn, user, body, *match.groups())
                return fn(user, body, *match.groups())
        self._error(404, f"no route for {method} {path}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _hang(self, fn, user: Optional[HubUser], body: bytes, *groups: str) -> None:
        """Do the work (a commit is applied), then answer nothing until released; then drop the connection."""
        release = self.fake.release
        real_send = self._send

        def swallow(status: int, *args: Any, **kwargs: Any) -> None:
            self._entry.status = status

        self._send = swallow  # type: ignore[method-assign]
        try:
            fn(user, body, *groups)
        finally:
            self._send = real_send  # type: ignore[method-assign]
        release.wait(60)
        self.close_connection = True

    # -- access ------------------------------------------------------------
    def _repo_for_write(self, user: Optional[HubUser], repo_id: str) -> Optional[HubRepo]:
        if user is None:
            self._error(401, "You must be authenticated to write")
            return None
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if repo_id.split("/")[0] not in user.namespaces or user.role == "read":
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None
        return repo

    def _repo_for_read(self, user: Optional[HubUser], repo_id: str) -> Optional[HubRepo]:
        repo = self.fake.repos.get(repo_id)
        if repo is None or (repo.private and (user is None or repo_id.split("/")[0] not in user.namespaces)):
            self._error(404 if user else 401, "Repository not found", "RepoNotFound")
            return None
        return repo

    # -- endpoints -----------------------------------------------------------
    def whoami(self, user: Optional[HubUser], body: bytes) -> None:
        if user is None:
            return self._error(401, _BAD_TOKEN)
        self._send(200, {
            "type": "user",
            "name": user.name,
            "fullname": user.name.title(),
            "orgs": [{"type": "org", "name": o} for o in user.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": user.role}},
        })

    def create(self, user: Optional[HubUser], body: bytes) -> None:
        if user is None:
            return self._error(401, "You must be authenticated to create a repo")
        req = json.loads(body or b"{}")
        namespace = req.get("organization") or user.name
        repo_id = f"{namespace}/{req['name']}"
        if namespace not in user.namespaces or user.role == "read":
            return self._error(403, f'You don\'t have the rights to create a model under the namespace "{namespace}"')
        url = f"{self.fake.url}/{repo_id}"
        with self.fake.lock:
            if repo_id in self.fake.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url},
                                  {"X-Error-Message": "You already created this model repo"})
            self.fake.repos[repo_id] = HubRepo(repo_id, bool(req.get("private", False)),
                                               {".gitattributes": b"*.whl filter=lfs diff=lfs merge=lfs -text\n"})
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def info(self, user: Optional[HubUser], body: bytes, repo_id: str) -> None:
        repo = self._repo_for_read(user, repo_id)
        if repo is None:
            return
        self._send(200, {
            "_id": repo_id, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0],
            "sha": repo.sha, "private": repo.private, "disabled": False, "gated": False,
            "siblings": [{"rfilename": p} for p in sorted(repo.files)],
            "cardData": _card_data(repo.files.get("README.md")), "tags": [],
        })

    def validate_yaml(self, user: Optional[HubUser], body: bytes) -> None:
        """The checks the Hub makes on a card's metadata that this project relies on."""
        content = json.loads(body).get("content", "").encode()
        data = _card_data(content)
        errors = validate_card_data(data) if data is not None else ["no YAML metadata block"]
        if errors:
            return self._send(400, {"errors": [{"message": e} for e in errors]})
        self._send(200, {"warnings": []})

    def preupload(self, user: Optional[HubUser], body: bytes, repo_id: str, revision: str) -> None:
        if self._repo_for_write(user, repo_id) is None:
            return
        files = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f["sample"])
            binary = b"\0" in sample or f["path"].endswith((".whl", ".png", ".bin"))
            files.append({"path": f["path"], "uploadMode": "lfs" if binary or f["size"] > 10_000_000 else "regular",
                          "shouldIgnore": False, "oid": None})
        self._send(200, {"files": files, "commitOid": self.fake.repos[repo_id].sha})

    def lfs_batch(self, user: Optional[HubUser], body: bytes, repo_id: str) -> None:
        if self._repo_for_write(user, repo_id) is None:
            return
        req = json.loads(body)
        with self.fake.lock:
            self.fake.lfs_transfers.append(list(req.get("transfers") or []))
        objects = []
        for obj in req["objects"]:
            entry: Dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.fake.blobs:
                entry["actions"] = {
                    "upload": {"href": f"{self.fake.url}/__lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.fake.url}/__lfs/verify"},
                }
            objects.append(entry)
        # Offered "xet" too when hf_xet is installed; answering "basic" keeps plain HTTP uploads.
        self._send(200, {"transfer": "basic", "objects": objects})

    def lfs_put(self, user: Optional[HubUser], body: bytes, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, "content does not match its oid")
        with self.fake.lock:
            self.fake.blobs[oid] = body
        self._send(200)

    def lfs_verify(self, user: Optional[HubUser], body: bytes) -> None:
        req = json.loads(body)
        blob = self.fake.blobs.get(req["oid"])
        if blob is None or len(blob) != req["size"]:
            return self._error(404, "object not uploaded")
        self._send(200, {"ok": True})

    def commit(self, user: Optional[HubUser], body: bytes, repo_id: str, revision: str) -> None:
        repo = self._repo_for_write(user, repo_id)
        if repo is None:
            return
        header: Dict[str, Any] = {}
        added: Dict[str, bytes] = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
            elif item["key"] == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                blob = self.fake.blobs.get(value["oid"])
                if blob is None:
                    return self._error(400, f"LFS object {value['oid']} was not uploaded")
                added[value["path"]] = blob
            else:
                return self._error(400, f"unsupported commit operation {item['key']}")
        with self.fake.lock:
            repo.files.update(added)
            repo.sha = hashlib.sha1((repo.sha + json.dumps(sorted(added))).encode()).hexdigest()
            repo.commits.append({"message": header.get("summary"), "files": sorted(added), "author": user.name})
        self._send(200, {"commitUrl": f"{self.fake.url}/{repo_id}/commit/{repo.sha}", "commitOid": repo.sha,
                         "success": True, "pullRequestUrl": None})

    def settings(self, user: Optional[HubUser], body: bytes, repo_id: str) -> None:
        repo = self._repo_for_write(user, repo_id)
        if repo is None:
            return
        req = json.loads(body or b"{}")
        with self.fake.lock:
            if "private" in req:
                repo.private = bool(req["private"])
        self._send(200, {})

    def delete_repo(self, user: Optional[HubUser], body: bytes) -> None:
        req = json.loads(body or b"{}")
        namespace = req.get("organization") or (user.name if user else "")
        repo_id = f"{namespace}/{req.get('name')}"
        if self._repo_for_write(user, repo_id) is None:
            return
        with self.fake.lock:
            del self.fake.repos[repo_id]
        self._send(200, {})

    def resolve(self, user: Optional[HubUser], body: bytes, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo_for_read(user, repo_id)
        if repo is None:
            return
        data = repo.files.get(path)
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        headers = {"ETag": f'"{_git_sha(data)}"', "X-Repo-Commit": repo.sha}
        self._send(200, raw=data, headers=headers, head=self.command == "HEAD")
