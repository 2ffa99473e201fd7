"""The command line: batch naming and sharding, exit statuses, Ctrl-C, and a killed-and-resumed batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference_core.cli.batch import find_photos, in_shard, parse_shard, unique_names
from inference_core.errors import ErrorCode, FaceAlbedoError

PROJECT = Path(__file__).resolve().parents[1]
BATCH_FACES = ("deca/exp_1.jpg", "deca/IMG_0392_inputs.jpg")
"""Two small face photos for the batch run (224 x 224)."""
BATCH_NO_FACES = ("brick.png", "coffee.png")


def facealbedo(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inference_core", *args], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_duplicate_stems_get_distinct_stable_names(tmp_path):
    for relative in ("a/face.jpg", "b/face.jpg", "b/face.png", "solo.png", "c/d/other.jpg", "notes.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    names = [item.name for item in unique_names(find_photos([tmp_path]))]
    assert names == ["a__face", "b__face_jpg", "b__face_png", "other", "solo"]


def test_shards_split_a_batch_into_disjoint_deterministic_parts():
    names = [f"photo_{i}" for i in range(200)]
    shards = [[name for name in names if in_shard(name, k, 4)] for k in range(1, 5)]
    assert sorted(sum(shards, [])) == sorted(names)  # every photo in exactly one shard
    assert all(25 < len(shard) < 75 for shard in shards)
    assert shards[1] == [name for name in names if in_shard(name, 2, 4)]
    assert parse_shard("3/8") == (3, 8)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(FaceAlbedoError) as caught:
            parse_shard(bad)
        assert caught.value.code is ErrorCode.USAGE


def test_unwritable_output_fails_at_once_with_its_exit_status(tmp_path, faces_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    process = facealbedo("reconstruct", str(faces_dir / "photos" / "astronaut.png"), "--out", str(blocker / "out"))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == ErrorCode.OUTPUT_NOT_WRITABLE.exit_status
    assert stderr.strip().splitlines()[-1].startswith("facealbedo: error [OUTPUT_NOT_WRITABLE]")


def test_ctrl_c_during_a_reconstruction_exits_130_and_leaves_nothing(tmp_path, faces_dir):
    out = tmp_path / "out"
    process = facealbedo("reconstruct", str(faces_dir / "photos" / "astronaut.png"), "--out", str(out),
                         "--resolution", "64", "--progress-json")
    lines = []
    for line in process.stdout:  # wait until the fit runs, then press Ctrl-C
        lines.append(line)
        if json.loads(line).get("stage") == "fit":
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    reported = events("".join(lines) + rest)
    assert process.returncode == ErrorCode.CANCELLED.exit_status == 130
    assert reported[0]["event"] == "progress"
    assert (reported[-1]["event"], reported[-1]["code"]) == ("error", "CANCELLED")
    assert list(out.iterdir()) == []


def _batch_inputs(tmp_path: Path, faces_dir: Path) -> Path:
    """a/face.<ext>, b/face.<ext> (duplicate stems) and two photos without a face, as symlinks."""
    folder = tmp_path / "photos"
    for sub, relative in zip("ab", BATCH_FACES):
        source = faces_dir / "photos" / relative
        (folder / sub).mkdir(parents=True)
        (folder / sub / f"face{source.suffix}").symlink_to(source)
    for name in BATCH_NO_FACES:
        (folder / name).symlink_to(faces_dir / "no_face" / name)
    return folder


@pytest.mark.slow
def test_batch_killed_and_resumed_redoes_nothing_finished(tmp_path, faces_dir):
    photos, out = _batch_inputs(tmp_path, faces_dir), tmp_path / "out"
    command = ("batch", str(photos), "--out", str(out), "--resolution", "64", "--quality", "preview",
               "--progress-json")
    first = facealbedo(*command)
    deadline = time.monotonic() + 240
    while not (out / "a__face" / "manifest.json").exists():  # kill -9 once the first result is there
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished = (out / "a__face" / "manifest.json").stat().st_mtime_ns

    second = facealbedo(*command)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-2000:]
    assert events(stdout)[-1]["event"] == "done"
    summary = {row["name"]: row for row in json.loads((out / "summary.json").read_text())["rows"]}
    assert {name: (row["status"], row["code"]) for name, row in summary.items()} == {
        "a__face": ("skipped", ""), "b__face": ("ok", ""), "brick": ("failed", "NO_FACE"),
        "coffee": ("failed", "NO_FACE")}
    assert (out / "a__face" / "manifest.json").stat().st_mtime_ns == finished  # not redone
    assert (out / "b__face" / "manifest.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial folder
    assert "NO_FACE" in (out / "summary.csv").read_text()

    third = facealbedo(*command)  # everything settled: nothing runs again, not even the failures
    third.communicate(timeout=120)
    log = [json.loads(line)["name"] for line in (out / "batch-log.jsonl").read_text().splitlines()]
    assert sorted(name for name in log if name != "a__face") == ["b__face", "brick", "coffee"]  # each once
    summary = {row["name"]: row["status"] for row in json.loads((out / "summary.json").read_text())["rows"]}
    assert summary == {"a__face": "skipped", "b__face": "skipped", "brick": "failed", "coffee": "failed"}
