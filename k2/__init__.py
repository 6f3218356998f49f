"""K2 core: shared contracts, settings, the local stack and the `k2` command line."""
