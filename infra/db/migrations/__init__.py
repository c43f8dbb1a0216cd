"""Alembic migrations of the registry database (a package so installs ship the scripts)."""
