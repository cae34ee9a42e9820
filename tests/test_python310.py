"""pyproject says Python >= 3.10: config.toml is read there too, with tomli in tomllib's place
(issue 20 point 5). Runs where a Python 3.10 is found; installs tomli into a throwaway venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYENV = Path.home() / ".pyenv/versions"
FOUND = sorted(PYENV.glob("3.10.*/bin/python")) if PYENV.is_dir() else []
PY310 = str(FOUND[-1]) if FOUND else shutil.which("python3.10") or "python3.10"


@pytest.fixture(scope="module")
def python310(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which(PY310) or sys.platform == "win32":
        pytest.skip("no Python 3.10 here")
    venv = tmp_path_factory.mktemp("py310") / "venv"
    made = subprocess.run([PY310, "-m", "venv", str(venv)], capture_output=True)
    py = venv / "bin" / "python"
    if made.returncode or not py.exists():
        pytest.skip("cannot make a Python 3.10 venv")
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "tomli"], capture_output=True)
    if pip.returncode:
        pytest.skip("tomli cannot be installed here")
    return py


def test_config_toml_is_read_on_python_3_10(python310: Path, tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('model = "x"\n[sampling]\ntemperature = 0.2\n')
    code = (
        "import sys; from pathlib import Path; from airochat.domain.config import load_settings;"
        f"s = load_settings(Path({str(ROOT / 'configs/default.toml')!r}), Path({str(user)!r}));"
        "print(sys.version_info[:2], s.model, s.sampling.temperature)"
    )
    out = subprocess.run(
        [str(python310), "-c", code], capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 10) x 0.2"
