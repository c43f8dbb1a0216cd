"""Text generation with a causal LM: the decode deployment and how the gateway reaches it."""
