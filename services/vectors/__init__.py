"""The embedded vector engine as a Ray Serve deployment, for several gateway replicas, and its client."""
