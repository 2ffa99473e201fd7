"""`facealbedo batch DIR... --out DIR`: reconstruct every photo in folders, resumable and shardable.

- Resume: a photo whose result folder is complete (has manifest.json; folders appear only complete, by
  atomic rename) is skipped; so is one that failed for a reason of the photo itself (NO_FACE, ...) as
  recorded in the batch log, unless --retry-failed. Temporary folders of killed runs are removed.
- Keeps going past bad photos; stops only when the output itself fails (disk full, not writable).
- Summary: summary.csv and summary.json in --out (rewritten after every photo), one row per photo with
  its status (ok, skipped, failed) and error code.
- --shard K/N: this run takes the photos whose result name hashes to K-1 modulo N, so N machines (array
  jobs of any scheduler) share one batch without talking to each other; logs and summaries get a
  `.shard-K-of-N` suffix.
- Photos with the same stem get distinct result names from their path below the input folder.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from inference_core.cli import add_common_options
from inference_core.cli.reconstruct import add_reconstruction_options, install_cancel_handlers, reconstruction_kwargs
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import emit_event

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".gif"}
FINAL_FAILURES = {ErrorCode.NO_FACE, ErrorCode.MULTIPLE_FACES, ErrorCode.FACE_TOO_SMALL, ErrorCode.UNREADABLE_IMAGE}
"""Failures that are properties of the photo: a resumed batch does not try them again."""
FATAL_FAILURES = {ErrorCode.DISK_FULL, ErrorCode.OUTPUT_NOT_WRITABLE, ErrorCode.ASSETS_MISSING,
                  ErrorCode.ASSETS_CORRUPT, ErrorCode.DEVICE_UNAVAILABLE}
"""Failures that would repeat for every photo: the batch stops."""
SUMMARY_FIELDS = ("name", "photo", "status", "code", "message", "seconds", "folder")


@dataclass(frozen=True)
class BatchItem:
    photo: Path
    name: str  # result folder name, unique within the batch


@dataclass
class Row:
    """One line of the summary."""

    name: str
    photo: str
    status: str  # "ok", "skipped" or "failed"
    code: str = ""
    message: str = ""
    seconds: float = 0.0
    folder: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="reconstruct every photo in folders (resumable, shardable)",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog="Resume: run the same command again. Sharding: --shard 1/4 ... --shard 4/4 on four machines. "
               "Exit status 0 when the batch ran to its end (each photo's failure is a row of the summary, "
               "with its error code); otherwise the status of the error that stopped it (e.g. 32 DISK_FULL).")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="DIR", help="folders (searched recursively) or photos")
    add_reconstruction_options(parser)
    parser.add_argument("--workers", type=int, default=1, help="photos reconstructed in parallel (default 1)")
    parser.add_argument("--shard", default="1/1", metavar="K/N", help="take the K-th of N deterministic parts")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try again the photos that failed for a reason of their own (NO_FACE, ...)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k, n = 0, 0
    if not 1 <= k <= n:
        raise FaceAlbedoError(ErrorCode.USAGE, f"--shard {text!r} must be K/N with 1 <= K <= N, e.g. 2/8")
    return k, n


def find_photos(inputs: list[Path]) -> list[tuple[Path, str]]:
    """(photo, path label) of every photo file under the inputs, sorted; labels name the photo uniquely."""
    found = []
    for root in inputs:
        if root.is_file():
            found.append((root, root.name))
        elif root.is_dir():
            prefix = f"{root.name}/" if len(inputs) > 1 else ""
            found += [(p, prefix + p.relative_to(root).as_posix()) for p in root.rglob("*")
                      if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith(".")]
        else:
            raise FaceAlbedoError(ErrorCode.USAGE, f"{root} is neither a folder nor a file")
    return sorted(found, key=lambda item: item[1])


def unique_names(labelled: list[tuple[Path, str]]) -> list[BatchItem]:
    """Result names: the stem, or for stems that occur more than once the label's path ('a/b.jpg' -> 'a__b')."""
    stems = Counter(Path(label).stem for _, label in labelled)
    names = [Path(label).stem if stems[Path(label).stem] == 1 else str(Path(label).with_suffix("")).replace("/", "__")
             for _, label in labelled]
    repeated = Counter(names)
    return [BatchItem(photo, name if repeated[name] == 1 else f"{name}_{Path(label).suffix.lstrip('.').lower()}")
            for (photo, label), name in zip(labelled, names)]


def in_shard(name: str, k: int, n: int) -> bool:
    """Whether result `name` belongs to shard k of n (stable across machines and Python runs)."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % n == k - 1


def shard_suffix(k: int, n: int) -> str:
    return "" if n == 1 else f".shard-{k}-of-{n}"


def read_log(path: Path) -> dict[str, dict]:
    """name -> last record of the batch log (JSON lines; a torn last line from a kill is ignored)."""
    records = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                records[record["name"]] = record
            except (json.JSONDecodeError, KeyError):
                continue
    return records


def append_log(path: Path, row: Row) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(asdict(row)) + "\n")
        file.flush()
        os.fsync(file.fileno())


def write_summary(out: Path, suffix: str, rows: list[Row]) -> None:
    """summary<suffix>.csv and .json, replaced atomically."""
    for ext in ("csv", "json"):
        path = out / f"summary{suffix}.{ext}"
        temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(temp, "w", encoding="utf-8", newline="") as file:
            if ext == "csv":
                writer = csv.DictWriter(file, SUMMARY_FIELDS)
                writer.writeheader()
                writer.writerows(asdict(row) for row in rows)
            else:
                counts = Counter(row.status for row in rows)
                json.dump({"counts": dict(counts), "failures": dict(Counter(r.code for r in rows if r.code)),
                           "rows": [asdict(row) for row in rows]}, file, indent=1)
        os.replace(temp, path)


def reconstruct_one(item: BatchItem, kwargs: dict) -> Row:
    """Run the pipeline on one photo; photo-level failures become rows, fatal ones are raised."""
    from inference_core.pipeline import reconstruct

    start = time.perf_counter()
    try:
        result = reconstruct(item.photo, name=item.name, **kwargs)
    except FaceAlbedoError as error:
        if error.code in FATAL_FAILURES:
            raise
        return Row(item.name, str(item.photo), "failed", error.code.name, error.message,
                   round(time.perf_counter() - start, 2))
    except (MemoryError, RuntimeError, ValueError) as error:  # a bug or an odd photo: record it, go on
        return Row(item.name, str(item.photo), "failed", ErrorCode.INTERNAL.name, f"{type(error).__name__}: {error}",
                   round(time.perf_counter() - start, 2))
    return Row(item.name, str(item.photo), "ok", seconds=round(time.perf_counter() - start, 2),
               folder=str(result.folder))


def _worker_init(threads: int) -> None:
    import signal

    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_items(items: list[BatchItem], kwargs: dict, workers: int) -> Iterator[Row]:
    """Rows as photos finish: in this process (workers == 1) or in a pool of processes."""
    if workers <= 1:
        for item in items:
            yield reconstruct_one(item, kwargs)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(reconstruct_one, item, kwargs) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def plan(items: list[BatchItem], out: Path, log: dict[str, dict], retry_failed: bool) -> tuple[list[Row], list[BatchItem]]:
    """Split the shard's items into rows already settled (skipped) and items still to run."""
    settled, todo = [], []
    for item in items:
        record = log.get(item.name)
        if (out / item.name / "manifest.json").is_file():
            settled.append(Row(item.name, str(item.photo), "skipped", folder=str(out / item.name)))
        elif record and record["status"] == "failed" and not retry_failed and record["code"] in {
                c.name for c in FINAL_FAILURES}:
            settled.append(Row(**{**record, "status": "failed"}))
        else:
            todo.append(item)
    return settled, todo


def run(args: argparse.Namespace) -> int:
    from inference_core.export.folder import prepare_out_root, remove_stale_temp_folders

    k, n = parse_shard(args.shard)
    if args.workers < 1:
        raise FaceAlbedoError(ErrorCode.USAGE, "--workers must be at least 1")
    install_cancel_handlers()
    out = prepare_out_root(args.out)
    remove_stale_temp_folders(out)
    items = [item for item in unique_names(find_photos(args.inputs)) if in_shard(item.name, k, n)]
    suffix = shard_suffix(k, n)
    log_path = out / f"batch-log{suffix}.jsonl"
    rows, todo = plan(items, out, read_log(log_path), args.retry_failed)
    order = {item.name: i for i, item in enumerate(items)}
    kwargs = reconstruction_kwargs(args)
    report = _reporter(args.progress_json, len(items), len(rows))
    write_summary(out, suffix, rows)
    for row in run_items(todo, kwargs, args.workers):
        append_log(log_path, row)
        rows.append(row)
        rows.sort(key=lambda r: order[r.name])
        write_summary(out, suffix, rows)
        report(row)
    counts = Counter(row.status for row in rows)
    if args.progress_json:
        emit_event("done", result=str(out), counts=dict(counts))
    else:
        print(f"{len(rows)} photos: {counts.get('ok', 0)} done, {counts.get('skipped', 0)} already done, "
              f"{counts.get('failed', 0)} failed; summary in {out / f'summary{suffix}.csv'}")
    return 0


def _reporter(progress_json: bool, total: int, done: int):
    """A function called with each finished row: a JSON progress event or a line on stderr."""
    state = {"done": done}

    def report(row: Row) -> None:
        state["done"] += 1
        fraction = state["done"] / max(total, 1)
        text = f"{row.name}: {row.status}" + (f" [{row.code}] {row.message}" if row.code else f" ({row.seconds:.1f} s)")
        if progress_json:
            emit_event("progress", stage="batch", fraction=round(fraction, 4), message=text)
        else:
            print(f"[{state['done']}/{total}] {text}", file=sys.stderr)

    return report
