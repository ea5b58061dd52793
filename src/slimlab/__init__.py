"""slimlab: make models smaller, faster and cheaper, and show with statistics that they are no worse."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `slimlab.compress` without importing torch for `import slimlab` (the CLI reads __version__ first).
    if name == "compress":
        from slimlab.api import compress

        return compress
    raise AttributeError(f"module 'slimlab' has no attribute {name!r}")
