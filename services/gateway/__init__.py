"""The gateway: the one HTTP entry point (FastAPI), served as a Ray Serve ingress."""
