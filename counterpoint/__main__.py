"""`python -m counterpoint` is the `counterpoint` command."""

from __future__ import annotations

from counterpoint.cli import main

main()
