"""fetch_raw_files: loopback HTTP downloads (resume, retry, verification) and offline mirrors (real data)."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hbench.datasets.download import HASHES, fetch_raw_files, record_hashes
from hbench.datasets.spec import DatasetSpec, PrepareOptions, RawData, RawFile
from hbench.errors import HBenchError
from hbench.ui import QUIET

FAST = {"backoff": 0.01, "timeout": 5.0}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_spec(*raw_files: RawFile, name: str = "toy", mirror_dirs: tuple[str, ...] = ()) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        title=name,
        raw_files=raw_files,
        reader=lambda paths: RawData(),
        defaults=PrepareOptions(),
        mirror_dirs=mirror_dirs,
    )


def shared_sha(shared_data: Path, relpath: str) -> str:
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        if path == relpath:
            return digest
    raise KeyError(relpath)


# ---- a loopback server ------------------------------------------------------------------------------


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # first request only: send this many body bytes, then drop the connection
    fail_first: int = 0  # answer 503 this many times
    ranges: bool = True  # False: ignore Range and always answer 200 with the whole file
    requests: list[dict[str, str]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        state.requests.append({"path": self.path, **dict(self.headers)})
        if state.fail_first > 0:
            state.fail_first -= 1
            self.send_error(503)
            return
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if (rng := self.headers.get("Range")) and state.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.cut_after is not None:
            payload, state.cut_after = payload[: state.cut_after], None
            self.close_connection = True
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, ServerState]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def closed_url() -> str:
    """A URL on a port where nothing listens: the offline case."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data"


@pytest.fixture()
def dest(hbench_home: Path) -> Path:
    return hbench_home / "raw" / "toy"


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, several read chunks


# ---- downloads --------------------------------------------------------------------------------------


def test_download_verifies_pinned_hash_and_reuses_cache(server, dest, closed_url):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    paths = fetch_raw_files(spec, dest, [], QUIET, **FAST)
    assert paths == {"a.bin": dest / "a.bin"}
    assert paths["a.bin"].read_bytes() == PAYLOAD
    assert not (dest / "a.bin.part").exists()
    # The cached file is verified and used without the network.
    offline = make_spec(RawFile("a.bin", closed_url, sha256=sha(PAYLOAD)))
    assert fetch_raw_files(offline, dest, [], QUIET, retries=0, **FAST) == paths


def test_interrupted_download_resumes_with_range(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    state.cut_after = 300_000
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    paths = fetch_raw_files(spec, dest, [], QUIET, **FAST)
    assert paths["a.bin"].read_bytes() == PAYLOAD
    assert len(state.requests) == 2
    assert "Range" not in state.requests[0]
    assert state.requests[1]["Range"] == "bytes=300000-"


def test_server_ignoring_range_restarts_from_zero(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    state.cut_after = 300_000
    state.ranges = False
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    assert fetch_raw_files(spec, dest, [], QUIET, **FAST)["a.bin"].read_bytes() == PAYLOAD
    assert state.requests[1]["Range"] == "bytes=300000-"


def test_503_is_retried(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    state.fail_first = 2
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    assert fetch_raw_files(spec, dest, [], QUIET, retries=4, **FAST)["a.bin"].read_bytes() == PAYLOAD
    assert len(state.requests) == 3


def test_503_beyond_retries_is_a_user_error(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    state.fail_first = 10
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin"))
    with pytest.raises(HBenchError, match="503.*--source"):
        fetch_raw_files(spec, dest, [], QUIET, retries=1, **FAST)
    assert len(state.requests) == 2


def test_corrupt_download_is_rejected_and_removed(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD[:-1] + b"X"
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    with pytest.raises(HBenchError) as info:
        fetch_raw_files(spec, dest, [], QUIET, **FAST)
    message = str(info.value)
    assert "\n" not in message
    assert "a.bin" in message and f"{url}/a.bin" in message and sha(PAYLOAD)[:12] in message
    assert "the download is corrupt or the source changed" in message
    assert not (dest / "a.bin").exists() and not (dest / "a.bin.part").exists()


def test_unpinned_hash_is_recorded_and_a_changed_source_detected(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin"))
    paths = fetch_raw_files(spec, dest, [], QUIET, **FAST)
    assert not (dest / HASHES).exists()  # fetching alone never records: the file is not verified yet
    record_hashes(spec, dest, {})
    assert json.loads((dest / HASHES).read_text()) == {"a.bin": sha(PAYLOAD)}
    assert paths["a.bin"].read_bytes() == PAYLOAD
    (dest / "a.bin").unlink()
    state.files["/a.bin"] = PAYLOAD + b"changed"
    with pytest.raises(HBenchError, match="recorded in .*the download is corrupt or the source changed"):
        fetch_raw_files(spec, dest, [], QUIET, **FAST)
    assert not (dest / "a.bin").exists()


def test_damaged_cache_is_fetched_again(server, dest):
    url, state = server
    state.files["/a.bin"] = PAYLOAD
    spec = make_spec(RawFile("a.bin", f"{url}/a.bin", sha256=sha(PAYLOAD)))
    fetch_raw_files(spec, dest, [], QUIET, **FAST)
    (dest / "a.bin").write_bytes(b"damaged")
    assert fetch_raw_files(spec, dest, [], QUIET, **FAST)["a.bin"].read_bytes() == PAYLOAD
    assert len(state.requests) == 2


def test_no_network_and_no_mirror_explains_how_to_supply_the_file(dest, closed_url, tmp_path):
    spec = make_spec(RawFile("ratings.csv", closed_url))
    with pytest.raises(HBenchError) as info:
        fetch_raw_files(spec, dest, [tmp_path / "empty-mirror"], QUIET, retries=0, **FAST)
    message = str(info.value)
    assert "\n" not in message
    assert "ratings.csv" in message and closed_url in message and "--source" in message


def test_http_404_is_not_retried(server, dest):
    url, state = server
    spec = make_spec(RawFile("a.bin", f"{url}/missing.bin"))
    with pytest.raises(HBenchError, match="404"):
        fetch_raw_files(spec, dest, [], QUIET, retries=3, **FAST)
    assert len(state.requests) == 1


# ---- offline mirrors (real data) --------------------------------------------------------------------


def test_mirror_file_is_found_by_folder_and_copied(shared_data, dest, closed_url):
    pinned = shared_sha(shared_data, "amazon-cd-hgcf/train.pkl")
    spec = make_spec(RawFile("train.pkl", closed_url, sha256=pinned), name="amazon-cd", mirror_dirs=("amazon-cd-hgcf",))
    paths = fetch_raw_files(spec, dest, [shared_data], QUIET, retries=0, **FAST)
    assert paths == {"train.pkl": dest / "train.pkl"}
    assert not paths["train.pkl"].is_symlink()
    assert hashlib.sha256(paths["train.pkl"].read_bytes()).hexdigest() == pinned


def test_recursive_search_skips_wrong_files(shared_data, dest, closed_url, tmp_path):
    decoy = tmp_path / "decoy" / "old" / "train.pkl"
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(b"another dataset's train.pkl")
    pinned = shared_sha(shared_data, "amazon-cd-hgcf/train.pkl")
    spec = make_spec(RawFile("train.pkl", closed_url, sha256=pinned))
    paths = fetch_raw_files(spec, dest, [tmp_path / "decoy", shared_data], QUIET, retries=0, **FAST)
    assert hashlib.sha256(paths["train.pkl"].read_bytes()).hexdigest() == pinned


def test_pinned_mismatch_at_exact_location_is_an_error(shared_data, dest, closed_url, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "amazon-cd").mkdir(parents=True)
    (mirror / "amazon-cd" / "train.pkl").write_bytes(b"not the HGCF split")
    pinned = shared_sha(shared_data, "amazon-cd-hgcf/train.pkl")
    spec = make_spec(RawFile("train.pkl", closed_url, sha256=pinned), name="amazon-cd")
    with pytest.raises(HBenchError) as info:
        fetch_raw_files(spec, dest, [mirror, shared_data], QUIET, retries=0, **FAST)
    message = str(info.value)
    assert "train.pkl" in message and pinned[:12] in message and sha(b"not the HGCF split")[:12] in message
    assert not (dest / "train.pkl").exists()


def test_unpinned_ambiguous_recursive_hits_are_ignored(dest, closed_url, tmp_path):
    mirror = tmp_path / "mirror"
    for folder, data in (("x", b"one"), ("y", b"two")):
        (mirror / folder).mkdir(parents=True)
        (mirror / folder / "f.txt").write_bytes(data)
    spec = make_spec(RawFile("f.txt", closed_url))
    with pytest.raises(HBenchError, match="--source"):
        fetch_raw_files(spec, dest, [mirror], QUIET, retries=0, **FAST)
    (mirror / "y" / "f.txt").write_bytes(b"one")  # the same bytes twice is not ambiguous
    assert fetch_raw_files(spec, dest, [mirror], QUIET, retries=0, **FAST)["f.txt"].read_bytes() == b"one"
    record_hashes(spec, dest, {})
    assert json.loads((dest / HASHES).read_text()) == {"f.txt": sha(b"one")}


def _readonly(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        mode = stat.S_IRUSR | stat.S_IRGRP | (stat.S_IXUSR | stat.S_IXGRP if path.is_dir() else 0)
        path.chmod(mode)


def _writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(stat.S_IRWXU)


def build_ml100k_zip(shared_data: Path, folder: Path) -> tuple[Path, bytes]:
    data = (shared_data / "movielens-100k" / "u.data").read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/u.data", data)
        zf.writestr("ml-100k/README", b"readme")
        zf.writestr("../escape.txt", b"never extracted")
    return archive, data


def test_archive_in_read_only_mirror_is_extracted_member_wise(shared_data, dest, closed_url, tmp_path):
    archive, data = build_ml100k_zip(shared_data, tmp_path / "zips")
    pinned = shared_sha(shared_data, "movielens-100k/u.data")
    spec = make_spec(RawFile("ml-100k.zip", closed_url, members={"ml-100k/u.data": pinned}), name="ml")
    _readonly(archive.parent)
    try:
        paths = fetch_raw_files(spec, dest, [archive.parent], QUIET, retries=0, **FAST)
    finally:
        _writable(archive.parent)
    assert paths == {"u.data": dest / "u.data"}
    assert paths["u.data"].read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["u.data"]
    assert not (tmp_path / "escape.txt").exists()


def test_archive_in_cache_is_extracted_and_member_hash_checked(shared_data, dest, closed_url, tmp_path):
    archive, data = build_ml100k_zip(shared_data, dest)
    spec = make_spec(RawFile("ml-100k.zip", closed_url, members={"ml-100k/u.data": sha(data)}))
    assert fetch_raw_files(spec, dest, [], QUIET, retries=0, **FAST)["u.data"].read_bytes() == data
    (dest / "u.data").unlink()
    wrong = make_spec(RawFile("ml-100k.zip", closed_url, members={"ml-100k/u.data": sha(b"other")}))
    with pytest.raises(HBenchError, match="u.data.*the archive is corrupt or the source changed"):
        fetch_raw_files(wrong, dest, [], QUIET, retries=0, **FAST)
    assert not (dest / "u.data").exists()
    missing = make_spec(RawFile("ml-100k.zip", closed_url, members={"ml-100k/u.item": None}))
    with pytest.raises(HBenchError, match="no member ml-100k/u.item"):
        fetch_raw_files(missing, dest, [], QUIET, retries=0, **FAST)


def test_extracted_members_in_mirror_are_used_without_archive(shared_data, dest, closed_url):
    pinned = shared_sha(shared_data, "movielens-100k/u.data")
    spec = make_spec(
        RawFile("ml-100k.zip", closed_url, members={"ml-100k/u.data": pinned, "ml-100k/u.item": None}),
        name="movielens-100k",
    )
    paths = fetch_raw_files(spec, dest, [shared_data], QUIET, retries=0, **FAST)
    assert set(paths) == {"u.data", "u.item"}
    assert hashlib.sha256(paths["u.data"].read_bytes()).hexdigest() == pinned
    assert paths["u.item"].read_bytes() == (shared_data / "movielens-100k" / "u.item").read_bytes()
    assert not (dest / "ml-100k.zip").exists()


def test_archive_is_downloaded_when_no_mirror_has_it(shared_data, server, dest, tmp_path):
    url, state = server
    archive, data = build_ml100k_zip(shared_data, tmp_path / "zips")
    state.files["/ml-100k.zip"] = archive.read_bytes()
    spec = make_spec(RawFile("ml-100k.zip", f"{url}/ml-100k.zip", members={"ml-100k/u.data": sha(data)}))
    paths = fetch_raw_files(spec, dest, [tmp_path / "nothing-here"], QUIET, **FAST)
    assert paths["u.data"].read_bytes() == data
    record_hashes(spec, dest, {})
    assert json.loads((dest / HASHES).read_text()) == {"ml-100k.zip": sha(archive.read_bytes())}
