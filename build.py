"""Build the installable Blender extension: dist/facealbedo-<version>.zip.

The zip holds blender_manifest.toml, the add-on's modules (facealbedo_addon/) at its root, the inference
core under core/inference_core/ (the add-on runs `python -m inference_core` with PYTHONPATH=core), and
build_info.json naming this checkout (whose .venv the add-on then finds by itself).

    python build.py                      # the extension; the core runs with a separate Python environment
    python build.py --with-wheels        # also the core's dependencies as wheels for this platform, so
                                         # that Blender's own Python runs the core (pip download, online)
    python build.py --with-wheels --wheels-from DIR   # take the wheels from DIR instead of downloading
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = ROOT / "blender_manifest.toml"
ADDON = ROOT / "facealbedo_addon"
CORE = ROOT / "inference_core"
CORE_IN_ZIP = "core"
SOURCE_SUFFIXES = {".py", ".json", ".toml"}
NOT_BUNDLED = {"numpy", "bpy", "setuptools"}
"""Dependencies not bundled as wheels: Blender ships numpy (and is bpy); setuptools is build-time only."""
BLENDER_PYTHON = "3.11"
PLATFORM_TAGS = {  # Blender platform -> pip --platform tags of its wheels
    "linux-x64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_14_0_arm64"],
}


def manifest_version() -> str:
    return tomllib.loads(MANIFEST.read_text(encoding="utf-8"))["version"]


def current_platform() -> str:
    """This machine's Blender platform name (linux-x64, windows-x64, macos-arm64)."""
    system = {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}[platform.system()]
    machine = platform.machine().lower()
    return f"{system}-{'arm64' if machine in ('arm64', 'aarch64') else 'x64'}"


def core_requirements() -> list[str]:
    """The core's dependencies from pyproject.toml, less those Blender already has."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [(re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower(), req) for req in project["dependencies"]]
    return [req for name, req in names if name not in NOT_BUNDLED]


def pip_download_command(dest: Path, blender_platform: str) -> list[str]:
    """`pip download` of the core's wheels for Blender's Python on one platform (binary wheels only)."""
    command = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:",
               "--python-version", BLENDER_PYTHON, "--implementation", "cp"]
    for tag in PLATFORM_TAGS[blender_platform]:
        command += ["--platform", tag]
    return command + core_requirements()


def gather_wheels(work: Path, blender_platform: str, wheels_from: Path | None) -> list[Path]:
    """Wheels to bundle: copied from `wheels_from`, else downloaded with pip into `work`."""
    work.mkdir(parents=True, exist_ok=True)
    if wheels_from is not None:
        for wheel in sorted(wheels_from.glob("*.whl")):
            shutil.copy2(wheel, work / wheel.name)
    else:
        subprocess.run(pip_download_command(work, blender_platform), check=True)
    wheels = sorted(work.glob("*.whl"))
    wheels = [w for w in wheels if w.name.split("-")[0].lower().replace("_", "-") not in NOT_BUNDLED]
    if not wheels:
        raise SystemExit(f"no wheels found for {blender_platform}")
    return wheels


def manifest_text(wheels: list[Path], blender_platform: str | None) -> str:
    """The manifest, with `wheels` and `platforms` added as top-level keys when wheels are bundled."""
    text = MANIFEST.read_text(encoding="utf-8")
    if not wheels:
        return text
    extra = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
    extra += f'platforms = ["{blender_platform}"]\n\n'
    first_table = re.search(r"^\[", text, flags=re.MULTILINE)
    cut = first_table.start() if first_table else len(text)
    return text[:cut] + extra + text[cut:]


def source_files(package: Path) -> list[Path]:
    """Files of a package worth shipping (sources and package data, no caches)."""
    return sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
                  and "__pycache__" not in p.parts)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def build(out_dir: Path = ROOT / "dist", with_wheels: bool = False, wheels_from: Path | None = None,
          blender_platform: str | None = None) -> Path:
    """Write the extension zip and return its path."""
    version = manifest_version()
    blender_platform = blender_platform or current_platform()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = gather_wheels(out_dir / f"wheels-{blender_platform}", blender_platform, wheels_from) if with_wheels else []
    suffix = f"-{blender_platform}" if wheels else ""
    target = out_dir / f"facealbedo-{version}{suffix}.zip"
    info = {"source": str(ROOT), "version": version, "commit": git_commit(), "wheels": bool(wheels)}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("blender_manifest.toml", manifest_text(wheels, blender_platform))
        archive.writestr("build_info.json", json.dumps(info, indent=1))
        for path in source_files(ADDON):
            archive.write(path, path.relative_to(ADDON).as_posix())
        for path in source_files(CORE):
            archive.write(path, f"{CORE_IN_ZIP}/{path.relative_to(ROOT).as_posix()}")
        for wheel in wheels:
            archive.write(wheel, f"wheels/{wheel.name}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the FaceAlbedo Blender extension zip.")
    parser.add_argument("--with-wheels", action="store_true",
                        help="bundle the core's dependencies as wheels (pip download; needs the internet)")
    parser.add_argument("--wheels-from", type=Path, help="take the wheels from this folder, do not download")
    parser.add_argument("--platform", choices=sorted(PLATFORM_TAGS), help="wheels for this platform "
                        "(default: this machine's)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    print(build(args.out, args.with_wheels, args.wheels_from, args.platform))
    return 0


if __name__ == "__main__":
    sys.exit(main())
