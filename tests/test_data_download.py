"""``speech data download`` and ``download-librispeech`` end to end against a local HTTP server (a thread in the
test) serving tarballs built from real clips and sentences: fresh download, resume of a partial download, automatic
resume of a broken transfer, checksum refusal and refusal of malicious archives."""

from __future__ import annotations

import hashlib
import http.server
import io
import logging
import tarfile
import threading
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from speech.cli import main as speech_main
from speech.data import SplitSettings, build_index
from speech.data.download import DownloadError, download_dataset, download_file, safe_extract


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[name]`` with Range support; ``server.cuts`` makes the next responses stop early."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        data = server.files.get(self.path.lstrip("/"))
        range_header = self.headers.get("Range")
        server.requests.append((self.path, range_header))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if range_header and server.honour_range:
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cuts.pop(0) if server.cuts else None
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.cuts, httpd.honour_range = {}, [], [], True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def tarball(entries: dict[str, bytes], extra=()) -> bytes:
    """A .tar.gz holding ``entries`` (name -> bytes) plus extra TarInfo members (links, ...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def archives(sc_v2_clips):
    """(main archive, test-set archive) in the official layouts, from a few real clips."""
    main, test = {}, {}
    for label in ("yes", "no", "_unknown_"):
        for path in sc_v2_clips[label][:4]:
            if label == "_unknown_":
                word, rest = path.name.split("_", 1)
                main[f"./{word}/{rest[: -len('.wav')]}"] = path.read_bytes()
            else:
                main[f"./{label}/{path.name}"] = path.read_bytes()
            test[f"./{label}/{path.name}"] = path.read_bytes()
    for path in sc_v2_clips["_silence_"][:3]:
        test[f"./_silence_/{path.name}"] = path.read_bytes()
    main["./_background_noise_/noise.wav"] = sc_v2_clips["_silence_"][5].read_bytes()
    main["./validation_list.txt"] = b"yes/" + sc_v2_clips["yes"][0].name.encode() + b"\n"
    main["./testing_list.txt"] = b""
    main["./LICENSE"] = b"CC BY 4.0\n"
    return tarball(main), tarball(test)


def test_cli_download_end_to_end(tmp_path, server, archives, capsys, sc_v2_clips):
    main_tar, test_tar = archives
    server.files = {
        "speech_commands_v0.02.tar.gz": main_tar,
        "speech_commands_test_set_v0.02.tar.gz": test_tar,
    }
    root = tmp_path / "data"
    argv = ["data", "download", "--version", "v0.02", "--root", str(root), "--url-base", server.url,
            "--no-progress", "--sha256", sha(main_tar),
            "--sha256", f"speech_commands_test_set_v0.02.tar.gz={sha(test_tar)}"]  # fmt: skip
    assert speech_main(argv) == 0
    full = build_index(root / "speech_commands_v0.02", "yes,no,_unknown_", split=SplitSettings(unknown_percent=100))
    assert full.layout == "full" and full.split_method == "lists" and len(full.noise_files) == 1
    listed = sc_v2_clips["yes"][0].name
    assert [Path(e.path).name for e in full.splits["validation"] if e.word == "yes"] == [listed]
    test = build_index(root / "speech_commands_test_set_v0.02", "all", split=SplitSettings("speaker"))
    assert test.layout == "test_set" and len(test.silence_files) == 3
    assert (root / "speech_commands_v0.02.tar.gz").read_bytes() == main_tar
    assert not list(root.glob("*.part")) and not list(root.glob("*.partial"))
    # a second run finds everything in place and fetches nothing
    before = len(server.requests)
    assert speech_main(argv) == 0
    assert len(server.requests) == before
    # the official (known) checksum does not match our home-made archive: refused, nothing kept
    other = tmp_path / "other"
    assert speech_main(["data", "download", "--version", "v0.02", "--root", str(other), "--url-base", server.url,
                        "--no-test-set", "--no-progress"]) == 1  # fmt: skip
    assert "does not match the expected af14739e" in capsys.readouterr().err
    assert not other.exists()  # nothing kept, not even the folder the command made


def test_resume_of_a_partial_download(tmp_path, server, archives):
    data = archives[0]
    server.files = {"a.tar.gz": data}
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(data[:1000])
    download_file(server.url + "a.tar.gz", dest, sha256=sha(data), progress=True)
    assert dest.read_bytes() == data
    assert server.requests == [("/a.tar.gz", "bytes=1000-")]


def test_broken_transfer_is_resumed_automatically(tmp_path, server, archives):
    data = archives[0]
    server.files = {"a.tar.gz": data}
    server.cuts = [5000, 7000]  # the first two responses stop early
    dest = download_file(server.url + "a.tar.gz", tmp_path / "a.tar.gz", sha256=sha(data), progress=False)
    assert dest.read_bytes() == data
    assert [r for _, r in server.requests] == [None, "bytes=5000-", "bytes=12000-"]


def test_server_without_range_support_restarts_and_unknown_checksum_warns(tmp_path, server, archives, caplog):
    data = archives[1]
    server.files = {"speech_commands_test_set_v0.01.tar.gz": data}
    server.honour_range = False
    part = tmp_path / "speech_commands_test_set_v0.01.tar.gz.part"
    part.write_bytes(b"garbage that must not stay in front")
    with caplog.at_level(logging.WARNING):
        dest = download_file(server.url + part.name[:-5], tmp_path / part.name[:-5], progress=False)
    assert dest.read_bytes() == data
    assert "no known checksum" in caplog.text and sha(data) in caplog.text


def test_wrong_checksum_and_missing_file_are_errors(tmp_path, server, archives):
    server.files = {"a.tar.gz": archives[0]}
    with pytest.raises(DownloadError, match="does not match"):
        download_file(server.url + "a.tar.gz", tmp_path / "a.tar.gz", sha256="0" * 64, progress=False)
    assert not list(tmp_path.iterdir())
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url + "missing.tar.gz", tmp_path / "m.tar.gz", progress=False)


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "entries, extra, why",
    [
        ({"../evil.wav": b"x"}, (), "'..'"),
        ({"./yes/../../evil.wav": b"x"}, (), "'..'"),
        ({"/tmp/evil.wav": b"x"}, (), "absolute path"),
        ({"./yes/a.wav": b"x"}, [_link("./yes/link.wav", "../../../etc/passwd")], "outside"),
        ({"./yes/a.wav": b"x"}, [_link("./yes/abs.wav", "/etc/passwd")], "absolute"),
        ({"./yes/a.wav": b"x"}, [_link("./yes/hard.wav", "../outside.wav", tarfile.LNKTYPE)], "outside"),
        ({"./yes/a.wav": b"x"}, [_link("./dev", "", tarfile.CHRTYPE)], "special file"),
    ],
)
def test_malicious_archives_are_refused(tmp_path, server, entries, extra, why):
    data = tarball(entries, extra)
    server.files = {"speech_commands_v0.02.tar.gz": data}
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=f"refusing to extract.*{why}"):
        download_dataset("v0.02", root, url_base=server.url, test_set=False,
                         sha256={"speech_commands_v0.02.tar.gz": sha(data)}, progress=False)  # fmt: skip
    assert sorted(p.name for p in root.iterdir()) == ["speech_commands_v0.02.tar.gz"]  # nothing extracted
    assert not (tmp_path / "evil.wav").exists()


def test_safe_extract_unwraps_a_single_top_folder_and_refuses_to_overwrite(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(tarball({"top/yes/a.wav": b"1", "top/no/b.wav": b"2", "top/inner/ok": b"3"},
                                [_link("top/yes/link.wav", "a.wav")]))  # fmt: skip
    dest = safe_extract(archive, tmp_path / "out", progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["inner", "no", "yes"]
    assert (dest / "yes" / "link.wav").read_bytes() == b"1"
    with pytest.raises(DownloadError, match="already exists"):
        safe_extract(archive, dest, progress=False)
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DownloadError, match="not a readable tar"):
        safe_extract(tmp_path / "bad.tar.gz", tmp_path / "out2", progress=False)


def librispeech_tarball(part: str) -> tuple[bytes, dict[str, str]]:
    """A LibriSpeech-layout archive (``LibriSpeech/<part>/<reader>/<chapter>/``, FLAC + ``.trans.txt``) of real
    sentences of librispeech-mini, re-encoded to FLAC as the originals are; returns it and ``{id: words}``."""
    import soundfile as sf

    libri = SHARED_DATA / "librispeech-mini"
    entries, said = {"LibriSpeech/SPEAKERS.TXT": b"; the readers\n"}, {}
    for transcript in sorted(libri.glob("*/*/*.trans.txt"))[:2]:
        reader, chapter = transcript.parent.parent.name, transcript.parent.name
        folder = f"LibriSpeech/{part}/{reader}/{chapter}"
        lines = transcript.read_text().splitlines()[:3]
        for line in lines:
            uid, words = line.split(" ", 1)
            wave, rate = sf.read(transcript.parent / f"{uid}.ogg", dtype="int16")
            flac = io.BytesIO()
            sf.write(flac, wave, rate, format="FLAC")
            entries[f"{folder}/{uid}.flac"] = flac.getvalue()
            said[uid] = words
        entries[f"{folder}/{transcript.name}"] = ("\n".join(lines) + "\n").encode()
    return tarball(entries), said


def test_cli_downloads_a_librispeech_part_that_running_speech_reads(tmp_path, server, capsys):
    from speech.data.running_speech import read_running_speech

    data, said = librispeech_tarball("dev-clean")
    server.files = {"dev-clean.tar.gz": data}
    root = tmp_path / "data"
    argv = ["data", "download-librispeech", "--part", "dev-clean", "--root", str(root), "--url-base", server.url,
            "--no-progress"]  # fmt: skip
    assert speech_main([*argv, "--sha256", sha(data)]) == 0
    folder = root / "librispeech-dev-clean"
    out = capsys.readouterr().out
    assert f"dev-clean -> {folder}" in out and f"--config configs/live.yaml --data.running_speech {folder}" in out
    speech = read_running_speech(folder)
    assert {u.id: " ".join(u.words) for u in speech.utterances} == said and len(speech.readers) == 2
    assert not speech.bad_files and (folder / "SPEAKERS.TXT").is_file()
    assert (root / "librispeech-dev-clean.tar.gz").read_bytes() == data
    before = len(server.requests)  # a second run finds it extracted and fetches nothing
    assert speech_main([*argv, "--sha256", sha(data)]) == 0 and len(server.requests) == before
    # without --sha256 the published checksum of dev-clean applies: our home-made archive is refused, nothing kept
    other = tmp_path / "other"
    assert speech_main([*argv[:5], str(other), *argv[6:]]) == 1
    assert "does not match the expected 76f87d09" in capsys.readouterr().err
    assert not other.exists()  # nothing kept, not even the folder the command made


def test_a_download_that_cannot_start_leaves_no_folder_behind(tmp_path, server, capsys):
    """Issue #36 row 7: no server (connection refused) or no such file (HTTP 404) left an empty data/ behind; the
    folders a failed download made are removed, a folder the user had is kept as it was."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    cases = [(["data", "download", "--version", "v0.02"], closed, "cannot connect"),
             (["data", "download", "--version", "v0.02"], server.url, "HTTP 404"),
             (["data", "download-librispeech", "--part", "dev-clean"], closed, "cannot connect")]
    for command, url, says in cases:
        root = tmp_path / "new" / "data"
        assert speech_main([*command, "--root", str(root), "--url-base", url, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
        assert list(tmp_path.iterdir()) == []  # neither data/ nor new/
    mine = tmp_path / "mine"
    mine.mkdir()
    assert speech_main(["data", "download", "--version", "v0.02", "--root", str(mine), "--url-base", closed,
                        "--no-progress"]) == 1
    assert mine.is_dir() and list(mine.iterdir()) == []
