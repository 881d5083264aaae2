"""Benchmarks: each measures dogpipe's real code path against a baseline in the same run, as ratios."""
