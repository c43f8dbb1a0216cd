"""One default stack (`counterpoint up --no-demo`) for the modules here, started once for the package.

They only add to it (their own collections, keys, jobs, models), so they share it instead of each
starting one (~45 s a start). test_stack.py runs last: its restart test stops the stack for good.
The stacks with other settings (replicas, several nodes, clients, the dashboard) live beside this
package and start after it is down: they use the same ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s
