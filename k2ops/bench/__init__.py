"""Benchmarks of the whole platform (`k2 bench`)."""
