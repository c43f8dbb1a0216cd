"""``python -m counterpoint.workers.train``: the job's entry point (:func:`~.entry.main`).

Ray pickles ``train_loop_per_worker`` by module name (``counterpoint.workers.train.loop``), which
workers can import, so running this file as ``__main__`` is safe.
"""

from __future__ import annotations

import sys

from counterpoint.workers.train.entry import main

if __name__ == "__main__":
    sys.exit(main())
