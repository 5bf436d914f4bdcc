"""System programs the tests drive for real (nginx, chromium, promtool, systemd-analyze).

`make test` installs them (scripts/system_deps.sh). Outside CI a missing one skips its
tests with a loud reason; under CI=true it fails, so nothing is silently left untested.
"""

from __future__ import annotations

import os
import shutil

import pytest


def need_program(name: str, package: str | None = None) -> str:
    path = shutil.which(name)
    if path:
        return path
    reason = (f"{name} is not installed (Debian package {package or name}; "
              "`make test` installs it)")
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " — under CI nothing skips")
    pytest.skip("SKIPPED LOUDLY: " + reason)
    raise AssertionError  # unreachable
