"""The deployment files, checked by the real programs that read them."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path


from tests.conftest import ROOT
from tests.programs import need_program

DEPLOY = ROOT / "deploy"


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as shipped, with its venv path pointed at this checkout's venv (verify
    checks that ExecStart is an executable)."""
    analyze = need_program("systemd-analyze", "systemd")
    unit = (DEPLOY / "diemthi.service").read_text()
    assert "Restart=always" in unit and "ProtectSystem=strict" in unit
    assert "ReadWritePaths=/var/lib/diemthi" in unit and "EnvironmentFile=" in unit
    assert "User=diemthi" in unit and "UMask=0027" in unit
    venv = Path(sys.executable).parent.parent
    copy = tmp_path / "diemthi.service"
    copy.write_text(unit.replace("/opt/diemthi/venv", str(venv)))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "diemthi.service" not in result.stderr, result.stderr  # no warning about it


def test_systemd_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    analyze = need_program("systemd-analyze", "systemd")
    copy = tmp_path / "diemthi.service"
    copy.write_text((DEPLOY / "diemthi.service").read_text())  # ExecStart does not exist here
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode != 0 and "/opt/diemthi/venv/bin/diemthi" in result.stderr


def test_env_example_names_only_real_settings() -> None:
    from diemthi.settings import PREFIX, Settings

    known = {PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    names = [line.lstrip("# ").split("=")[0]
             for line in (DEPLOY / "diemthi.env.example").read_text().splitlines()
             if line.lstrip("# ").startswith(PREFIX) and "=" in line]
    assert names and set(names) <= known, set(names) - known


def test_alert_rules_pass_promtool() -> None:
    promtool = need_program("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=DEPLOY,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=DEPLOY,
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


def test_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for lock, wanted in (("requirements.lock", project["dependencies"]),
                         ("requirements-dev.lock",
                          project["dependencies"] + project["optional-dependencies"]["dev"])):
        text = (ROOT / lock).read_text()
        pinned = {line.split("==")[0].lower().replace("_", "-")
                  for line in text.splitlines() if "==" in line and not line.startswith("#")}
        for requirement in wanted:
            name = requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0]
            assert name.strip().lower().replace("_", "-") in pinned, (lock, name)
        blocks = [b for b in text.split("\n") if "==" in b and not b.startswith("#")]
        assert blocks and all(b.rstrip().endswith("\\") for b in blocks)  # hashes follow


def test_wheelhouse_installs_offline_the_locked_versions(tmp_path: Path) -> None:
    """`make wheelhouse`, then a fresh venv installs diemthi with no index at all."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # no extra index, no find-links
    subprocess.run(["make", "-s", "wheelhouse"], cwd=ROOT, check=True, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    result = subprocess.run([*pip, "install", "-q", "--no-index", "--find-links",
                             str(ROOT / "dist" / "wheelhouse"), "diemthi"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    frozen = subprocess.run([*pip, "freeze"], env=env, capture_output=True, text=True,
                            check=True).stdout
    installed = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
                 for line in frozen.splitlines() if "==" in line}
    locked = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1].split()[0]
              for line in (ROOT / "requirements.lock").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert installed.pop("diemthi") is not None
    assert installed == locked
    help_text = subprocess.run([str(venv / "bin" / "diemthi"), "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "backup" in help_text and "serve" in help_text
