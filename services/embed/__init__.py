"""The embedding service: a Ray Serve deployment holding a bi-encoder, and the clients of it."""
