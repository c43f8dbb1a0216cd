"""The `counterpoint` command line: start/stop the local platform and drive the SDK.

Every command prints one clear line and exits non-zero on a bad input or an unreachable
gateway; it never shows a traceback for an error the user can fix.

One module per command group (see `app.py`, which assembles them); `shared.py` holds the SDK
client, consoles, progress bars and job following they all use. Work that is not about the
command line lives beside the code it belongs to (mining in `counterpoint.workers.mining`,
offline backups in `counterpoint.services.gateway.offline`) so the SDK and the UI can share it.
This package is on the top floor: it may import anything below it (counterpoint base, infra,
workers, services), and nothing imports it but the console script and ``python -m counterpoint``.
"""

from __future__ import annotations

from counterpoint.cli.app import app, main
from counterpoint.cli.shared import client  # the commands call `cli.client()`: one place to replace it

__all__ = ["app", "client", "main"]
