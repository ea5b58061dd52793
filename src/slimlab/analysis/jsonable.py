"""The one place where computed values become strict JSON: numpy scalars and arrays become Python values,
tuples become lists, and a NaN or an infinity (a value that could not be computed) becomes None."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
