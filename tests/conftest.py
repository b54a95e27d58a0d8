"""Shared test plumbing: real components are found or the test is skipped with the install
command; with MLO_REQUIRE_REAL_COMPONENTS=1 (set by CI) such a skip is a failure instead."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_REAL_ENV = "MLO_REQUIRE_REAL_COMPONENTS"


def require_binary(name: str, install_hint: str) -> str:
    """Path of executable `name`, or skip (fail under CI) saying how to install it."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH; install it with: {install_hint}"
    if os.environ.get(REQUIRE_REAL_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_REAL_ENV}=1 forbids skipping)")
    pytest.skip(message)


from tests.pgserver import postgres_url, store, store_url  # noqa: E402, F401
from tests.promserver import prometheus_factory  # noqa: E402, F401
