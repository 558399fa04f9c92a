"""Local Hugging Face Hub server for tests, and the session runner that uses it.

``LocalHubServer`` implements the part of the Hub HTTP API that huggingface_hub 2.4.0 uses for model
repositories when Xet storage is disabled (``HF_HUB_DISABLE_XET=1``). That is whoami, repository
creation, repository and revision info, file tree listing, branches, preupload, NDJSON commits, and
file resolution with the metadata headers of a ``HEAD`` request. It stores file contents in a folder
and keeps every commit, so any earlier commit hash resolves too.

huggingface_hub reads ``HF_ENDPOINT`` when it is imported, so clients run in their own processes.
``python tests/hub_server.py SESSION_JSON`` starts the server, runs each step of the session as a
subprocess pointed at it, stops the server and writes a report (return codes, requests, stored
repositories). Run under ``unshare -n``, the whole session lives in a network namespace whose only
interface is loopback. ``install_loopback_only_guard`` makes a client process raise on, and record,
any connection to a host other than loopback, and ``block_imports`` hides a package from a process.

Only the standard library is imported, so a step can import this module before anything else.

NOTE: preupload returns "regular" for every file, so file contents travel base64-encoded inside the
commit and the Git LFS batch and Xet upload paths of huggingface_hub are never exercised. README
metadata is accepted without validation. Pull requests, tags and pagination are not implemented.
"""

import argparse
import base64
import errno
import fcntl
import hashlib
import importlib.abc
import ipaddress
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger("hub_server")

FAKE_TOKEN = "hf_local_test_token_not_a_secret"
FAKE_USER = "user"
DEFAULT_BRANCH = "main"
INITIAL_COMMIT_MESSAGE = "initial commit"
# The Hub starts every repository with this file in its first commit.
INITIAL_GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
)

# Environment variable that names the file where the guard of a step records blocked hosts.
EGRESS_LOG_ENV = "LOCAL_HUB_EGRESS_LOG"
OUTPUT_TAIL_CHARS = 6000
STEP_TIMEOUT_SECONDS = 300


def git_blob_oid(content: bytes) -> str:
    """Return the git object id of a file: the SHA-1 of ``blob <size>\\0`` followed by the content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def hub_timestamp(moment: datetime) -> str:
    """Format a time as the Hub does (``2024-01-31T12:00:00.000Z``), the one format huggingface_hub parses."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HubError(Exception):
    """Error sent to the client as a status, a JSON message and the Hub's ``X-Error-Code`` header."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        error_code: str | None = None,
        repo_commit: str | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.repo_commit = repo_commit
        # Fields the Hub adds to the JSON error body, such as the url of an existing repository.
        self.body = body or {}


@dataclass
class Commit:
    oid: str
    parent_oid: str | None
    message: str
    created_at: datetime
    # Path in the repository -> SHA-256 of the stored blob.
    files: dict[str, str]


@dataclass
class Repository:
    repo_id: str
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)


class HubStorage:
    """Repositories and their commits, with file contents stored once per SHA-256 in ``root / "blobs"``."""

    def __init__(self, root: str | os.PathLike):
        self.blob_dir = Path(root) / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repositories: dict[str, Repository] = {}
        self.lock = threading.Lock()
        self._commit_count = 0

    def store_blob(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        path = self.blob_dir / digest
        if not path.exists():
            path.write_bytes(content)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return (self.blob_dir / digest).read_bytes()

    def create_repository(self, repo_id: str) -> Repository:
        if repo_id in self.repositories:
            raise HubError(HTTPStatus.CONFLICT, f"You already created this model repo: {repo_id}")
        repository = Repository(repo_id=repo_id, created_at=datetime.now(timezone.utc))
        self.repositories[repo_id] = repository
        initial = {".gitattributes": self.store_blob(INITIAL_GITATTRIBUTES)}
        self.add_commit(repository, DEFAULT_BRANCH, INITIAL_COMMIT_MESSAGE, initial, parent_oid=None)
        return repository

    def get_repository(self, repo_id: str) -> Repository:
        repository = self.repositories.get(repo_id)
        if repository is None:
            raise HubError(HTTPStatus.NOT_FOUND, f"Repository not found: {repo_id}", "RepoNotFound")
        return repository

    def resolve_revision(self, repository: Repository, revision: str) -> Commit:
        """Return the commit a branch name or a full commit hash points to."""
        oid = repository.branches.get(revision, revision)
        commit = repository.commits.get(oid)
        if commit is None:
            raise HubError(
                HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision} in {repository.repo_id}", "RevisionNotFound"
            )
        return commit

    def add_commit(
        self, repository: Repository, branch: str, message: str, files: dict[str, str], parent_oid: str | None
    ) -> Commit:
        self._commit_count += 1
        identity = json.dumps([repository.repo_id, parent_oid, message, sorted(files.items()), self._commit_count])
        commit = Commit(
            oid=hashlib.sha1(identity.encode()).hexdigest(),
            parent_oid=parent_oid,
            message=message,
            created_at=datetime.now(timezone.utc),
            files=files,
        )
        repository.commits[commit.oid] = commit
        repository.branches[branch] = commit.oid
        return commit

    def snapshot(self) -> dict:
        """Return every repository's branches, commit messages (oldest first) and the files at each branch."""
        described = {}
        for repo_id, repository in self.repositories.items():
            branches = {}
            for branch, oid in repository.branches.items():
                files = {}
                for path, digest in repository.commits[oid].files.items():
                    blob_path = self.blob_dir / digest
                    files[path] = {"size": blob_path.stat().st_size, "sha256": digest, "blob_path": str(blob_path)}
                branches[branch] = {"commit": oid, "files": files}
            described[repo_id] = {
                "branches": branches,
                "commit_messages": [commit.message for commit in repository.commits.values()],
            }
        return described


class LocalHubRequestHandler(BaseHTTPRequestHandler):
    """Route each request to the Hub endpoint it names; errors become JSON bodies with Hub error headers."""

    # HTTP/1.1 keeps connections alive, as huggingface_hub's client expects. Every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    server: "LocalHubServer"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        # Unquote each segment on its own: revisions and tree paths arrive with "/" quoted as %2F.
        segments = [unquote(segment) for segment in url.path.strip("/").split("/")]
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        error_code = None
        try:
            body = self._read_body() if method == "POST" else b""
            status = self._route(method, segments, query, body)
        except HubError as error:
            status, error_code = error.status, error.error_code
            self._send_error(error, head_only=method == "HEAD")
        except Exception as error:  # noqa: BLE001 - a broken request must not stop the server thread.
            logger.exception("Request %s %s failed", method, self.path)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            self._send_error(HubError(status, f"{type(error).__name__}: {error}"))
        self.server.record_request(method, url.path, int(status), error_code)

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: bytes) -> HTTPStatus:
        hub = self.server
        if segments[:2] == ["api", "whoami-v2"] and method == "GET":
            self._require_token()
            return self._send_json({"type": "user", "name": FAKE_USER, "fullname": "Local Test User", "orgs": []})
        if segments[:3] == ["api", "repos", "create"] and method == "POST":
            self._require_token()
            return self._send_json(hub.create_repository(json.loads(body or b"{}")))
        if segments[:2] == ["api", "validate-yaml"] and method == "POST":
            self._require_token()
            return self._send_json({"errors": [], "warnings": []})
        if len(segments) >= 4 and segments[0] == "api" and segments[1] in ("datasets", "spaces", "kernels"):
            raise unknown_endpoint(method, "/" + "/".join(segments), "It stores model repositories only.")
        if len(segments) >= 4 and segments[:2] == ["api", "models"]:
            return self._route_model_api(method, "/".join(segments[2:4]), segments[4:], query, body)
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = "/".join(segments[:2])
            return self._send_file(repo_id, segments[3], "/".join(segments[4:]), head_only=method == "HEAD")
        raise unknown_endpoint(method, "/" + "/".join(segments))

    def _route_model_api(
        self, method: str, repo_id: str, rest: list[str], query: dict[str, str], body: bytes
    ) -> HTTPStatus:
        hub = self.server
        action = rest[0] if rest else None
        blobs = query.get("blobs", "").lower() == "true"
        if method == "GET" and action is None:
            return self._send_json(hub.repository_info(repo_id, DEFAULT_BRANCH, blobs))
        if method == "GET" and action == "revision" and len(rest) >= 2:
            return self._send_json(hub.repository_info(repo_id, "/".join(rest[1:]), blobs))
        if method == "GET" and action == "tree" and len(rest) >= 2:
            recursive = query.get("recursive", "").lower() == "true"
            return self._send_json(hub.list_tree(repo_id, rest[1], "/".join(rest[2:]), recursive))
        if method == "GET" and action == "refs":
            return self._send_json(hub.list_refs(repo_id))
        if method == "POST" and action == "preupload" and len(rest) == 2:
            self._require_token()
            return self._send_json(hub.preupload(repo_id, rest[1], json.loads(body)))
        if method == "POST" and action == "commit" and len(rest) == 2:
            self._require_token()
            if query.get("create_pr") == "1":
                raise HubError(HTTPStatus.BAD_REQUEST, "The local test Hub does not implement pull requests.")
            return self._send_json(hub.commit(repo_id, rest[1], body))
        if method == "POST" and action == "branch" and len(rest) == 2:
            self._require_token()
            return self._send_json(hub.create_branch(repo_id, rest[1], json.loads(body or b"{}")))
        raise unknown_endpoint(method, f"/api/models/{repo_id}/{'/'.join(rest)}")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _require_token(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            raise HubError(HTTPStatus.UNAUTHORIZED, "Invalid credentials in Authorization header")

    def _send_json(self, payload: object, status: HTTPStatus = HTTPStatus.OK) -> HTTPStatus:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def _send_error(self, error: HubError, head_only: bool = False) -> None:
        data = json.dumps({"error": error.message, **error.body}).encode()
        self.send_response(error.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", error.message.encode("ascii", "replace").decode())
        if error.error_code is not None:
            self.send_header("X-Error-Code", error.error_code)
        if error.repo_commit is not None:
            self.send_header("X-Repo-Commit", error.repo_commit)
        self.send_header("Content-Length", "0" if head_only else str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)
        logger.info("Returned %d to %s %s: %s", error.status, self.command, self.path, error.message)

    def _send_file(self, repo_id: str, revision: str, path: str, head_only: bool) -> HTTPStatus:
        content, git_oid, commit_oid = self.server.read_file(repo_id, revision, path)
        start, end = 0, len(content)
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header and not head_only:
            start, end = parse_byte_range(range_header, len(content))
            status = HTTPStatus.PARTIAL_CONTENT

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        # A regular (non-LFS) file's ETag is its git blob id. LFS files would add X-Linked-Etag and
        # X-Linked-Size, which this server never needs because it stores every file as regular.
        self.send_header("ETag", f'"{git_oid}"')
        self.send_header("X-Repo-Commit", commit_oid)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(content)}")
        self.end_headers()
        if not head_only:
            self.wfile.write(content[start:end])
        return status


def unknown_endpoint(method: str, path: str, detail: str = "") -> HubError:
    # A warning, because a client calling an endpoint this server lacks usually means the server needs extending.
    logger.warning("No endpoint for %s %s, returning 404. %s", method, path, detail)
    return HubError(HTTPStatus.NOT_FOUND, f"The local test Hub has no endpoint {method} {path}. {detail}".strip())


def parse_byte_range(header: str, size: int) -> tuple[int, int]:
    """Return the half-open byte range ``[start, end)`` of a ``Range: bytes=a-b`` header."""
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    last_is_valid = not last.strip() or last.strip().isdigit()
    if unit.strip() != "bytes" or "," in spec or not first.strip().isdigit() or not last_is_valid:
        raise HubError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"Unsupported Range header: {header!r}")
    start = int(first)
    end = min(int(last) + 1, size) if last.strip() else size
    if start >= size or end <= start:
        raise HubError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"Range {header!r} is outside {size} bytes")
    return start, end


class LocalHubServer(ThreadingHTTPServer):
    """Hub server on 127.0.0.1 and a free port, serving from a storage folder in a background thread.

    Use it as a context manager, or call ``start()`` and ``stop()``. ``endpoint`` is the value for
    ``HF_ENDPOINT``. ``requests`` lists ``(method, path, status, error_code)`` of every request served,
    where ``error_code`` is the ``X-Error-Code`` header sent (``EntryNotFound`` and so on) or None.
    """

    daemon_threads = True

    def __init__(self, storage_dir: str | os.PathLike, token: str = FAKE_TOKEN):
        super().__init__(("127.0.0.1", 0), LocalHubRequestHandler)
        self.storage = HubStorage(storage_dir)
        self.token = token
        self.requests: list[tuple[str, str, int, str | None]] = []
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHubServer":
        self._thread = threading.Thread(target=self.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        logger.info("Local Hub serving %s from %s", self.endpoint, self.storage.blob_dir.parent)
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
        logger.info("Local Hub at %s stopped after %d requests", self.endpoint, len(self.requests))

    def __enter__(self) -> "LocalHubServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def record_request(self, method: str, path: str, status: int, error_code: str | None) -> None:
        with self.storage.lock:
            self.requests.append((method, path, status, error_code))

    def repository_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"

    def create_repository(self, payload: dict) -> dict:
        if payload.get("type") not in (None, "model"):
            message = f"The local test Hub creates model repositories only, got {payload}."
            raise HubError(HTTPStatus.BAD_REQUEST, message)
        name = payload.get("name")
        if not name or "/" in name:
            raise HubError(HTTPStatus.BAD_REQUEST, f"Invalid repository name {name!r}.")
        repo_id = f"{payload.get('organization') or FAKE_USER}/{name}"
        with self.storage.lock:
            try:
                self.storage.create_repository(repo_id)
            except HubError as error:
                # create_repo(exist_ok=True) reads the url from the body of the 409 response.
                error.body["url"] = self.repository_url(repo_id)
                raise
        return {"url": self.repository_url(repo_id), "name": repo_id}

    def repository_info(self, repo_id: str, revision: str, blobs: bool) -> dict:
        with self.storage.lock:
            repository = self.storage.get_repository(repo_id)
            commit = self.storage.resolve_revision(repository, revision)
            siblings = []
            for path, digest in sorted(commit.files.items()):
                sibling = {"rfilename": path}
                if blobs:
                    content = self.storage.read_blob(digest)
                    sibling.update(size=len(content), blobId=git_blob_oid(content))
                siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": hub_timestamp(commit.created_at),
            "createdAt": hub_timestamp(repository.created_at),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }

    def list_tree(self, repo_id: str, revision: str, folder: str, recursive: bool) -> list[dict]:
        with self.storage.lock:
            commit = self.storage.resolve_revision(self.storage.get_repository(repo_id), revision)
            prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
            entries: dict[str, dict] = {}
            for path, digest in sorted(commit.files.items()):
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix) :].split("/")
                # Every folder between the listed folder and the file, or only the first one when not recursive.
                for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                    folder_path = prefix + "/".join(parts[:depth])
                    folder_oid = hashlib.sha1(f"{commit.oid}:{folder_path}".encode()).hexdigest()
                    entries.setdefault(folder_path, {"type": "directory", "oid": folder_oid, "path": folder_path})
                if recursive or len(parts) == 1:
                    content = self.storage.read_blob(digest)
                    entries[path] = {"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": path}
        if prefix and not entries:
            raise HubError(
                HTTPStatus.NOT_FOUND, f"{folder} does not exist in {repo_id} at {revision}", "EntryNotFound", commit.oid
            )
        return list(entries.values())

    def list_refs(self, repo_id: str) -> dict:
        with self.storage.lock:
            repository = self.storage.get_repository(repo_id)
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                for name, oid in repository.branches.items()
            ]
        return {"branches": branches, "converts": [], "tags": []}

    def create_branch(self, repo_id: str, branch: str, payload: dict) -> dict:
        with self.storage.lock:
            repository = self.storage.get_repository(repo_id)
            if branch in repository.branches:
                raise HubError(HTTPStatus.CONFLICT, f"Reference already exists: refs/heads/{branch}")
            start = self.storage.resolve_revision(repository, payload.get("startingPoint") or DEFAULT_BRANCH)
            repository.branches[branch] = start.oid
        return {}

    def preupload(self, repo_id: str, revision: str, payload: dict) -> dict:
        with self.storage.lock:
            repository = self.storage.get_repository(repo_id)
            current_files = {}
            if revision in repository.branches or revision in repository.commits:
                current_files = self.storage.resolve_revision(repository, revision).files
            files = []
            for entry in payload.get("files", []):
                digest = current_files.get(entry["path"])
                # The oid lets huggingface_hub skip files whose git blob id has not changed.
                oid = git_blob_oid(self.storage.read_blob(digest)) if digest is not None else None
                files.append({"path": entry["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        return {"files": files}

    def commit(self, repo_id: str, revision: str, body: bytes) -> dict:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(HTTPStatus.BAD_REQUEST, "The commit payload must start with a header line.")
        header = lines[0]["value"]

        with self.storage.lock:
            repository = self.storage.get_repository(repo_id)
            if revision not in repository.branches:
                message = f"Branch {revision} does not exist in {repo_id}"
                raise HubError(HTTPStatus.NOT_FOUND, message, "RevisionNotFound")
            parent = self.storage.resolve_revision(repository, revision)
            expected_parent = header.get("parentCommit")
            if expected_parent is not None and expected_parent != parent.oid:
                raise HubError(
                    HTTPStatus.PRECONDITION_FAILED,
                    f"parentCommit {expected_parent} is not the head {parent.oid} of {revision}.",
                )
            files = dict(parent.files)
            for line in lines[1:]:
                apply_commit_operation(self.storage, files, line["key"], line["value"])
            commit = self.storage.add_commit(repository, revision, header.get("summary", ""), files, parent.oid)
        commit_url = f"{self.repository_url(repo_id)}/commit/{commit.oid}"
        return {"commitUrl": commit_url, "commitOid": commit.oid, "success": True}

    def read_file(self, repo_id: str, revision: str, path: str) -> tuple[bytes, str, str]:
        """Return the content, git blob id and commit hash of a file at a revision."""
        with self.storage.lock:
            commit = self.storage.resolve_revision(self.storage.get_repository(repo_id), revision)
            digest = commit.files.get(path)
            if digest is None:
                raise HubError(
                    HTTPStatus.NOT_FOUND, f"Entry not found: {path} in {repo_id}", "EntryNotFound", commit.oid
                )
            content = self.storage.read_blob(digest)
        return content, git_blob_oid(content), commit.oid


def apply_commit_operation(storage: HubStorage, files: dict[str, str], key: str, value: dict) -> None:
    """Apply one NDJSON commit line (``file``, ``deletedFile`` or ``deletedFolder``) to a file table."""
    path = value["path"]
    if key == "file":
        if value.get("encoding") != "base64":
            raise HubError(HTTPStatus.BAD_REQUEST, f"Unsupported encoding {value.get('encoding')!r} for {path}.")
        files[path] = storage.store_blob(base64.b64decode(value["content"]))
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(HTTPStatus.NOT_FOUND, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        prefix = path.rstrip("/") + "/"
        for existing in [existing for existing in files if existing.startswith(prefix)]:
            del files[existing]
    elif key == "lfsFile":
        raise HubError(HTTPStatus.BAD_REQUEST, f"LFS file {path}: the local test Hub never asks for LFS uploads.")
    else:
        raise HubError(HTTPStatus.BAD_REQUEST, f"Unknown commit operation {key!r} for {path}.")


# Client-side helpers, imported by step processes.


class _BlockedImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, name, path, target=None):
        if name == self.package or name.startswith(self.package + "."):
            raise ModuleNotFoundError(f"{name} is blocked in this process by the local Hub test", name=name)
        return None


def block_imports(package: str) -> None:
    """Make every later import of ``package`` and its submodules raise ``ModuleNotFoundError``."""
    if package in sys.modules:
        raise RuntimeError(f"{package} is already imported, so blocking it now has no effect.")
    sys.meta_path.insert(0, _BlockedImportFinder(package))


def _is_loopback_host(host) -> bool:
    if host in (None, "", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install_loopback_only_guard(log_path: str | os.PathLike | None = None) -> None:
    """Make sockets of this process raise ``OSError`` on any host but loopback, and record each such host.

    The guard covers name resolution (``getaddrinfo``) and ``connect``, ``connect_ex`` and ``sendto``
    of IPv4 and IPv6 sockets. Unix sockets pass. The blocked hosts go to ``log_path``, by default the
    file named by ``LOCAL_HUB_EGRESS_LOG``, one per line, so a test can fail on them even where the
    client swallows the error.
    """
    log_path = log_path or os.environ.get(EGRESS_LOG_ENV)

    def reject(host, action: str) -> OSError:
        if log_path:
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write(f"{action} {host}\n")
        return OSError(errno.ENETUNREACH, f"{action} {host!r} blocked: this test process may reach 127.0.0.1 only")

    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback_host(host):
            raise reject(host, "resolve")
        return original_getaddrinfo(host, *args, **kwargs)

    def guarded(method_name: str, address_index: int):
        original = getattr(socket.socket, method_name)

        def method(self, *args):
            address = args[address_index]
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_host(address[0]):
                raise reject(address[0], method_name)
            return original(self, *args)

        return method

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = guarded("connect", 0)
    socket.socket.connect_ex = guarded("connect_ex", 0)
    socket.socket.sendto = guarded("sendto", -1)


# Session runner: the server and its client processes in one process tree.


def bring_up_loopback() -> None:
    """Set the loopback interface up, which a new network namespace starts without.

    Uses the Linux ``SIOCGIFFLAGS``/``SIOCSIFFLAGS`` ioctls, so neither ``ip`` nor ``ifconfig`` is needed.
    """
    get_flags, set_flags, interface_up = 0x8913, 0x8914, 0x1
    # struct ifreq: a 16-byte interface name, then a union whose first member is the short flags (40 bytes).
    layout = "16sh22x"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack(layout, fcntl.ioctl(sock, get_flags, struct.pack(layout, b"lo", 0)))[1]
        fcntl.ioctl(sock, set_flags, struct.pack(layout, b"lo", flags | interface_up))


def client_environment(endpoint: str, hf_home: str, token: str = FAKE_TOKEN) -> dict[str, str]:
    """Return this process's environment set up for Hub clients of ``endpoint`` only.

    Every inherited Hugging Face, transformers and proxy setting is dropped, so a token, cache or
    offline flag of the machine cannot leak in. The clients then get the server as endpoint, a fake
    token, a private ``HF_HOME``, and Xet, telemetry and update checks switched off.
    """
    inherited_prefixes = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_")
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(inherited_prefixes) and "proxy" not in name.lower()
    }
    environment.update(
        HF_ENDPOINT=endpoint,
        HF_TOKEN=token,
        HF_HOME=hf_home,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        DO_NOT_TRACK="1",
        NO_PROXY="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    return environment


def run_step(step: dict, environment: dict[str, str]) -> dict:
    """Run one step command to completion and return its return code, duration and output tail."""
    started = time.monotonic()
    try:
        completed = subprocess.run(
            step["argv"],
            cwd=step.get("cwd"),
            env={**environment, **step.get("env", {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=step.get("timeout", STEP_TIMEOUT_SECONDS),
        )
        returncode, output = completed.returncode, completed.stdout
    except subprocess.TimeoutExpired as error:
        returncode, output = None, (error.stdout or b"") + b"\n[step timed out]"
    seconds = time.monotonic() - started
    logger.info("Step %s ended with return code %s after %.1f s", step["name"], returncode, seconds)
    return {
        "name": step["name"],
        "returncode": returncode,
        "seconds": round(seconds, 2),
        "output_tail": output.decode(errors="replace")[-OUTPUT_TAIL_CHARS:],
    }


def run_session(spec: dict) -> dict:
    """Start a server, run every step against it (a failed step does not stop the later ones), and report.

    ``spec`` keys: ``storage_dir``, ``hf_home``, ``steps`` (each ``name``, ``argv`` and optional ``env``,
    ``cwd``, ``timeout``), ``isolated_network`` (bring loopback up first, for a fresh namespace) and
    ``egress_log`` (file the steps' guard writes blocked hosts to).
    """
    if spec.get("isolated_network"):
        bring_up_loopback()
    interfaces = sorted(name for _, name in socket.if_nameindex())

    with LocalHubServer(spec["storage_dir"]) as server:
        environment = client_environment(server.endpoint, spec["hf_home"])
        environment[EGRESS_LOG_ENV] = spec["egress_log"]
        steps = [run_step(step, environment) for step in spec["steps"]]

    return {
        "endpoint": server.endpoint,
        "isolated_network": bool(spec.get("isolated_network")),
        "interfaces": interfaces,
        "steps": steps,
        "requests": server.requests,
        "repositories": server.storage.snapshot(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Run client steps against a local Hugging Face Hub server.")
    parser.add_argument("spec", help="JSON file that describes the session (its keys are listed in run_session)")
    parser.add_argument("report", help="JSON file to write the session report to")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    spec = json.loads(Path(arguments.spec).read_text(encoding="utf-8"))
    report = run_session(spec)
    Path(arguments.report).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
