"""Objects handed to `slimlab.compress` (api.py), by the hash that names them in the config: this process
only. Low in the layers so that the model and data factories can read it without importing the API."""

from __future__ import annotations

import copy
from typing import Any

from slimlab.errors import ConfigError

_LIVE: dict[str, Any] = {}


def live_model(key: str) -> Any:
    if key not in _LIVE:
        raise ConfigError(
            "this run's model was passed to slimlab.compress in another process; rerun it there"
        )
    return copy.deepcopy(_LIVE[key])


def live_data(key: str) -> Any:
    if key not in _LIVE:
        raise ConfigError("this run's data was passed to slimlab.compress in another process; rerun it there")
    return _LIVE[key]
