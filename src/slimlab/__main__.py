"""`python -m slimlab` is the `slimlab` command."""

from slimlab.cli import app

app()
