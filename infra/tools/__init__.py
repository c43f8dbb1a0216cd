"""Developer tools the project installs for itself (e.g. the `helm` binary for chart tests)."""
