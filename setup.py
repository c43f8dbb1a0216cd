"""Maps the top-level folders onto the one `counterpoint` import namespace.

`services/`, `workers/`, `infra/` and `ui/` are the architecture; users import them as
`counterpoint.services`, `counterpoint.workers`, ... Everything else lives in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_packages, setup

ROOTS = {
    "counterpoint": "counterpoint",
    "counterpoint.workers": "workers",
    "counterpoint.services": "services",
    "counterpoint.infra": "infra",
    "counterpoint.ui": "ui",
}

packages: list[str] = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages.extend(f"{package}.{sub}" for sub in find_packages(folder))

setup(
    packages=packages,
    package_dir=ROOTS,
    package_data={
        "counterpoint": ["data/**/*.jsonl.gz", "data/**/*.tsv.gz", "decoding/*.jsonl"],
        "": ["*.ini", "*.mako", "*.md", "*.toml", "*.yaml", "*.json"],
    },
    include_package_data=True,
)
