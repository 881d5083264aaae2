"""One builder per pipeline step: ``build_<step>(cfg, params, upstream) -> Step``. No I/O, no AWS calls."""
