"""The client suites drive one real local stack per module, the e2e suite's (`tests/e2e/conftest.py`)."""

from __future__ import annotations

from tests.e2e.conftest import stack  # noqa: F401 - the module-scoped `counterpoint up` fixture
