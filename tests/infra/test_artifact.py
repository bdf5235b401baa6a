"""The Cloud Functions source archive: what the runtime unpacks must import and serve on its own."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile

import pytest

from svyaz.dev.artifact import TOOLING, ArtifactError, build_function_source

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Runs inside the unpacked archive: imports main as the runtime would and serves each target.
PROBE = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, os.getcwd())
    import functions_framework
    import main
    import svyaz

    targets = json.loads(sys.argv[1])
    report = {"svyaz_file": os.path.realpath(svyaz.__file__), "missing": [], "apps": []}
    for target in targets:
        if not callable(getattr(main, target, None)):
            report["missing"].append(target)
            continue
        app = functions_framework.create_app(target, "main.py")
        report["apps"].append(target)
    client = functions_framework.create_app(targets[0], "main.py").test_client()
    report["get_status"] = client.get("/").status_code
    print(json.dumps(report))
    """
)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SVYAZ_") and k != "PYTHONPATH"}
    env.update(SVYAZ_ENV="development", SVYAZ_STORE="memory", PYTHONDONTWRITEBYTECODE="1")
    return env


def probe_archive(archive: pathlib.Path, unpacked: pathlib.Path, targets: list[str]) -> dict:
    unpacked.mkdir()
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(unpacked)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(targets)],
        cwd=unpacked,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"the unpacked archive does not serve:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_served(report: dict, unpacked: pathlib.Path, targets: list[str]) -> None:
    svyaz_file = pathlib.Path(report["svyaz_file"])
    assert svyaz_file.is_relative_to(unpacked.resolve()), f"svyaz imported from {svyaz_file}, not the archive"
    assert report["missing"] == [], f"main.py lacks targets {report['missing']}"
    assert report["apps"] == targets
    assert report["get_status"] < 500, f"GET / on {targets[0]} answered {report['get_status']}"


@pytest.fixture
def stand_in_repo(tmp_path, repo_root) -> pathlib.Path:
    """A repository whose functions/main.py is a minimal stand-in (tests the builder on its own)."""
    root = tmp_path / "repo"
    (root / "functions").mkdir(parents=True)
    shutil.copy(repo_root / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(repo_root / "functions" / "requirements.lock", root / "functions" / "requirements.lock")
    shutil.copytree(
        repo_root / "shared" / "svyaz",
        root / "shared" / "svyaz",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    cache = root / "shared" / "svyaz" / "__pycache__"
    cache.mkdir()
    (cache / "config.cpython-311.pyc").write_bytes(b"stale bytecode")
    (root / "shared" / "svyaz" / "stray.pyc").write_bytes(b"stale bytecode")
    (root / "functions" / "main.py").write_text(
        textwrap.dedent(
            '''
            """Stand-in entry points."""
            import functions_framework
            import svyaz

            @functions_framework.http
            def collect(request):
                if request.method != "POST":
                    return ("method not allowed", 405)
                return ("", 204)

            @functions_framework.http
            def process_event(request):
                return ("", 204)
            '''
        )
    )
    return root


# --------------------------------------------------------------------------- the builder on a stand-in


def test_archive_layout_and_pins(stand_in_repo, tmp_path):
    archive = build_function_source(tmp_path / "dist" / "functions.zip", repo_root=stand_in_repo)
    assert archive == tmp_path / "dist" / "functions.zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        infos = zf.infolist()
        requirements = zf.read("requirements.txt").decode()
        main_py = zf.read("main.py")

    assert main_py == (stand_in_repo / "functions" / "main.py").read_bytes()
    assert "svyaz/__init__.py" in names and "svyaz/app/config.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith(("shared/", "functions/", "tests/", "/")) or ".." in n]
    package = {
        "svyaz/" + p.relative_to(stand_in_repo / "shared" / "svyaz").as_posix()
        for p in (stand_in_repo / "shared" / "svyaz").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        and p.relative_to(stand_in_repo / "shared" / "svyaz").parts[0] not in TOOLING
    }
    assert set(names) == package | {"main.py", "requirements.txt"}
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {FIXED_DATE_TIME}

    # requirements.txt is the lock: every package (direct and transitive) pinned and hashed.
    assert requirements == (stand_in_repo / "functions" / "requirements.lock").read_text()
    entries = [e for e in re.split(r"\n(?=\S)", requirements) if e and not e.startswith("#")]
    pins = {}
    for entry in entries:
        name, _, rest = entry.partition("==")
        assert rest and "--hash=sha256:" in rest, f"{entry.splitlines()[0]!r} is not pinned and hashed"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = rest.split()[0]
    with (stand_in_repo / "pyproject.toml").open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    direct = {re.match(r"[A-Za-z0-9._-]+", dep).group(0).lower() for dep in dependencies}
    assert direct | {"functions-framework"} <= set(pins)
    assert len(pins) > len(direct)  # the transitive ones too
    for name, version in pins.items():
        assert version == importlib.metadata.version(name)


def test_the_lock_is_current(repo_root):
    """functions/requirements.lock was made from pyproject.toml's dependencies and pins the versions
    installed (the ones the tests run against). After a dependency change: `svyaz package --lock`."""
    from svyaz.dev.artifact import lock_problems

    assert lock_problems(repo_root) == []


def test_a_lock_made_from_other_dependencies_is_refused(stand_in_repo, tmp_path):
    pyproject = stand_in_repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pydantic>=2.7",', '"pydantic>=2.7",\n    "rich",'))
    with pytest.raises(ArtifactError, match="svyaz package --lock"):
        build_function_source(tmp_path / "functions.zip", repo_root=stand_in_repo)


def test_the_unpacked_stand_in_serves_without_the_repository(stand_in_repo, tmp_path):
    archive = build_function_source(tmp_path / "functions.zip", repo_root=stand_in_repo)
    unpacked = tmp_path / "unpacked"
    report = probe_archive(archive, unpacked, ["collect", "process_event"])
    assert_served(report, unpacked, ["collect", "process_event"])
    assert report["get_status"] == 405


def test_archive_is_byte_reproducible(stand_in_repo, tmp_path):
    first = build_function_source(tmp_path / "a" / "functions.zip", repo_root=stand_in_repo)
    # New mtimes and a fresh bytecode cache must not change a byte.
    for path in (stand_in_repo / "shared" / "svyaz").rglob("*.py"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
    (stand_in_repo / "shared" / "svyaz" / "__pycache__" / "new.pyc").write_bytes(b"more")
    second = build_function_source(tmp_path / "b" / "functions.zip", repo_root=stand_in_repo)
    assert first.read_bytes() == second.read_bytes()

    (stand_in_repo / "functions" / "main.py").write_text("# changed\n", encoding="utf-8")
    third = build_function_source(tmp_path / "c" / "functions.zip", repo_root=stand_in_repo)
    assert third.read_bytes() != first.read_bytes(), "a real change must change the archive"


def test_missing_entry_points_file_is_a_clear_error(stand_in_repo, tmp_path):
    (stand_in_repo / "functions" / "main.py").unlink()
    with pytest.raises(ArtifactError, match="main.py"):
        build_function_source(tmp_path / "functions.zip", repo_root=stand_in_repo)
    assert not (tmp_path / "functions.zip").exists()


# --------------------------------------------------------------------------- the real functions/main.py


def test_the_real_archive_serves_every_target(repo_root, expected_functions, tmp_path):
    assert (repo_root / "functions" / "main.py").is_file(), "functions/main.py does not exist yet"
    archive = build_function_source(tmp_path / "functions.zip", repo_root=repo_root)
    unpacked = tmp_path / "unpacked"
    targets = ["collect", *sorted(set(expected_functions) - {"collect"})]
    report = probe_archive(archive, unpacked, targets)
    assert_served(report, unpacked, targets)


def test_the_real_archive_is_byte_reproducible(repo_root, tmp_path):
    assert (repo_root / "functions" / "main.py").is_file(), "functions/main.py does not exist yet"
    first = build_function_source(tmp_path / "a.zip", repo_root=repo_root)
    second = build_function_source(tmp_path / "b.zip", repo_root=repo_root)
    assert first.read_bytes() == second.read_bytes()


def test_the_real_archive_holds_no_development_tooling(repo_root, tmp_path):
    """The functions run the engine, the stores, the queue and the entry points: the CLI, the
    local service, benchmarks, imports and their libraries stay out of production."""
    archive = build_function_source(tmp_path / "functions.zip", repo_root=repo_root)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        requirements = zf.read("requirements.txt").decode().lower()
    tooling = [n for n in names if n.split("/")[1:2] and n.split("/")[1] in TOOLING]
    assert tooling == []
    assert "svyaz/entrypoints/collect.py" in names and "svyaz/adapters/store/firestore.py" in names
    assert "svyaz/web/svyaz.js" in names  # the collect function serves the site tag from it
    for library in ("boto3", "tqdm", "segno", "moto", "pytest"):
        assert library not in requirements
