"""`openlid bench --download`: a small run end to end (local server, plain GET, a real
DownloadManager job). The report's shape and the verification are checked, never timings."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import httpx2
import pytest

from desktop.bench.download import format_download_report, run_download_bench
from desktop.bench.download_server import BenchFileServer, write_random_file
from desktop.cli.main import main


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))


def test_bench_report_shape_and_verification(tmp_path: Path) -> None:
    report = run_download_bench(size_mb=2, rounds=3, work_dir=tmp_path)
    assert report["size_mb"] == 2
    assert report["rounds"] == 3
    assert len(report["plain_rounds_s"]) == len(report["openlid_rounds_s"]) == 3
    for key in ("plain_mb_per_s", "openlid_mb_per_s", "ratio_download_vs_plain",
                "sha256_mb_per_s"):
        assert report[key] > 0
    assert report["verified"] is True
    assert len(report["sha256"]) == 64
    assert report["targets"] == {"ratio_download_vs_plain": ">= 0.9"}
    assert 0 < report["bound_ratio"] <= 1
    paced = report["paced"]  # an unpaced run also compares over a paced "link"
    assert paced["server_rate_mb_per_s"] == 200
    assert paced["verified"] is True
    assert paced["ratio_download_vs_plain"] > 0
    assert not list(tmp_path.iterdir())  # the work folder is gone
    text = format_download_report(report)
    assert "ratio_download_vs_plain" in text
    assert "sha256 matched every round" in text
    assert "CPU-bound" in text
    assert "paced to 200 MB/s" in text
    assert not [t for t in threading.enumerate()
                if t.name.startswith(("openlid-download-", "openlid-bench-"))]


def test_cli_bench_download_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--download", "--size", "1", "--repeat", "3", "--json",
                 "--rate", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True
    assert report["server_rate_mb_per_s"] == 50
    assert "paced" not in report  # a paced run is the paced figure itself
    assert main(["bench", "--download", "--size", "0"]) == 2


def test_bench_server_speaks_range(tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    sha = write_random_file(source, 100_000)
    data = source.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    # The server is a child process of its own; it serves until stopped, then is gone.
    with BenchFileServer(source, sha) as server, httpx2.Client() as client:
        whole = client.get(server.file_url)
        assert whole.status_code == 200
        assert whole.content == data
        part = client.get(server.file_url, headers={"Range": "bytes=99000-"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == "bytes 99000-99999/100000"
        assert part.content == data[99000:]
        assert client.get(server.file_url, headers={"Range": "bytes=100000-"}).status_code \
            == 416
        assert client.get(server.url + "/nope").status_code == 404
    with pytest.raises(httpx2.ConnectError), httpx2.Client() as client:
        client.get(server.file_url)
