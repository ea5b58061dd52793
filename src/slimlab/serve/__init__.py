"""Serving: an HTTP model server with dynamic batching (`slimlab serve`), and MLPerf LoadGen drivers.

FastAPI, uvicorn and prometheus-client are imported here; install them with `pip install 'slimlab[serve]'`.
"""

from slimlab.serve.model import InputSpec, RequestError, Servable, dlrm_servable, from_module, load_servable

__all__ = ["InputSpec", "RequestError", "Servable", "dlrm_servable", "from_module", "load_servable"]
