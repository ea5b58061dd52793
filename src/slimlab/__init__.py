"""slimlab: make models smaller, faster and cheaper, and show with statistics that they are no worse."""

__version__ = "0.1.0"
