"""skuad.datasets: the bundled tasks, ADBench files on disk, and the verified ADBench download."""

import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from skuad.datasets import (
    ADBENCH_BASE_URL,
    adbench_manifest,
    fetch_adbench,
    get_data_home,
    load_adbench,
    resolve_adbench,
)

# The path a file has in the served "repository", as in ADBench's own layout.
TINY_PATH = "adbench/datasets/Classical/99_tiny.npz"


def _tiny_table(seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(60, 3)), rng.normal(loc=6.0, size=(6, 3))])
    y = np.r_[np.zeros(60, dtype=int), np.ones(6, dtype=int)]
    return X, y


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and records the paths asked for (quietly)."""

    def __init__(self, *args, requests, **kwargs):
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """An ADBench-like mirror on 127.0.0.1 serving one tiny .npz, and its checksum file."""
    served = tmp_path / "served"
    file = served / TINY_PATH
    file.parent.mkdir(parents=True)
    X, y = _tiny_table()
    np.savez(file, X=X, y=y)
    content = file.read_bytes()
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(
        "# checksums of the test mirror\n"
        f"{hashlib.sha256(content).hexdigest()}  {len(content)}  {TINY_PATH}\n"
        f"{'0' * 64}  10  adbench/datasets/README.md\n"
    )
    requests = []
    handler = partial(_RecordingHandler, directory=str(served), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "base_url": f"http://127.0.0.1:{server.server_address[1]}",
            "manifest": manifest,
            "file": file,
            "requests": requests,
            "X": X,
            "y": y,
            "server": server,
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_downloads_verifies_and_caches(mirror, tmp_path):
    home = tmp_path / "home"
    data = fetch_adbench(
        "99_tiny", data_home=home, base_url=mirror["base_url"], manifest=mirror["manifest"]
    )
    assert mirror["requests"] == ["/" + TINY_PATH]
    assert np.array_equal(data.data, mirror["X"]) and np.array_equal(data.target, mirror["y"])
    assert data.filename == str(home / "adbench" / "Classical" / "99_tiny.npz")
    assert data.url == f"{mirror['base_url']}/{TINY_PATH}" and data.name == "99_tiny"
    assert not list((home / "adbench" / "Classical").glob("*.part"))  # no temporary left

    # Cache hit: no second request, by number-free name, and with downloads switched off.
    for name in ["99_tiny", "tiny", "Classical/99_tiny.npz"]:
        X, y = fetch_adbench(
            name,
            data_home=home,
            base_url=mirror["base_url"],
            manifest=mirror["manifest"],
            return_X_y=True,
            download_if_missing=False,
        )
        assert np.array_equal(X, mirror["X"]) and np.array_equal(y, mirror["y"])
    assert len(mirror["requests"]) == 1


def test_environment_variables_choose_home_mirror_and_manifest(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("SKUAD_DATA", str(tmp_path / "env-home"))
    monkeypatch.setenv("SKUAD_ADBENCH_URL", mirror["base_url"])
    monkeypatch.setenv("SKUAD_ADBENCH_MANIFEST", str(mirror["manifest"]))
    assert get_data_home() == tmp_path / "env-home"
    X, _ = fetch_adbench("tiny", return_X_y=True)
    assert (tmp_path / "env-home" / "adbench" / "Classical" / "99_tiny.npz").is_file()
    assert np.array_equal(X, mirror["X"]) and len(mirror["requests"]) == 1


def test_checksum_mismatch_deletes_the_file_and_raises(mirror, tmp_path):
    mirror["file"].write_bytes(mirror["file"].read_bytes() + b"tampered")
    home = tmp_path / "home"
    with pytest.raises(OSError, match="does not match the expected checksum"):
        fetch_adbench(
            "99_tiny", data_home=home, base_url=mirror["base_url"], manifest=mirror["manifest"]
        )
    assert not any(path.is_file() for path in home.rglob("*"))  # nothing kept, not even a part


def test_offline_error_names_the_url_and_the_way_out(mirror, tmp_path):
    base_url = mirror["base_url"]
    mirror["server"].shutdown()
    mirror["server"].server_close()  # the port now refuses connections
    with pytest.raises(OSError, match="Could not download") as info:
        fetch_adbench(
            "99_tiny", data_home=tmp_path / "home", base_url=base_url, manifest=mirror["manifest"]
        )
    message = str(info.value)
    assert f"{base_url}/{TINY_PATH}" in message
    assert "99_tiny.npz" in message and "SKUAD_ADBENCH_URL" in message
    assert not any(path.is_file() for path in (tmp_path / "home").rglob("*"))


def test_missing_file_without_download_and_unknown_names(mirror, tmp_path):
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_adbench(
            "99_tiny",
            data_home=tmp_path,
            manifest=mirror["manifest"],
            download_if_missing=False,
        )
    with pytest.raises(ValueError, match="not an ADBench dataset.*Did you mean 99_tiny"):
        fetch_adbench("99_tiyn", data_home=tmp_path, manifest=mirror["manifest"])
    assert mirror["requests"] == []


def test_shipped_manifest_knows_the_adbench_files(tmp_path):
    entries = adbench_manifest()
    assert ADBENCH_BASE_URL.startswith("https://github.com/Minqi824/ADBench/raw/")
    assert len(entries) > 80 and all(path.endswith(".npz") for path in entries)
    sha256, size = entries["adbench/datasets/Classical/4_breastw.npz"]
    assert len(sha256) == 64 and size > 0
    # A stem in two folders must be qualified; a unique one resolves from its short forms.
    with pytest.raises(ValueError, match="ambiguous.*CV_by_ResNet18/MVTec-AD_bottle"):
        fetch_adbench("MVTec-AD_bottle", download_if_missing=False)
    with pytest.raises(OSError, match="4_breastw.npz"):
        fetch_adbench("breastw", data_home=tmp_path, download_if_missing=False)


def test_resolve_prefers_local_files_then_fetches(mirror, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    X, y = _tiny_table(seed=1)
    np.savez(local / "99_tiny.npz", X=X, y=y)
    options = {"base_url": mirror["base_url"], "manifest": mirror["manifest"]}
    home = tmp_path / "home"
    assert resolve_adbench("99_tiny", local, home, **options) == local / "99_tiny.npz"
    assert resolve_adbench(local / "99_tiny.npz", None, home, **options) == local / "99_tiny.npz"
    assert mirror["requests"] == []
    fetched = resolve_adbench("tiny", local, home, **options)  # no local/tiny.npz: fetched
    assert fetched == home / "adbench" / "Classical" / "99_tiny.npz"
    assert np.array_equal(load_adbench(fetched)[0], mirror["X"])
    with pytest.raises(ValueError, match="no such .npz file in .*local, and 'nothing'"):
        resolve_adbench("nothing", local, home, **options)


def test_skuad_bench_runs_on_a_fresh_machine_from_the_download_cache(
    mirror, tmp_path, monkeypatch, capsys
):
    """The README's ``skuad bench --datasets ...`` line with no ../shared folder: the named
    datasets are downloaded into the cache (here from the local mirror) and benchmarked."""
    from skuad.cli import main

    monkeypatch.chdir(tmp_path)  # no ../shared/data/adbench/classical next to it
    monkeypatch.setenv("SKUAD_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("SKUAD_ADBENCH_URL", mirror["base_url"])
    monkeypatch.setenv("SKUAD_ADBENCH_MANIFEST", str(mirror["manifest"]))
    argv = ["bench", "--datasets", "99_tiny", "--detectors", "IsolationForest", "--seeds", "0"]
    argv += ["--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "home" / "adbench" / "Classical" / "99_tiny.npz").is_file()
    assert "99_tiny" in capsys.readouterr().out
    assert main(argv) == 0  # second run: from the cache
    assert mirror["requests"] == ["/" + TINY_PATH]


def test_resolve_refuses_a_local_file_that_is_not_npz(tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="only ADBench .npz files"):
        resolve_adbench("table.csv", tmp_path)
