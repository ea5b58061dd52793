"""An ONNX model behind the nn.Module interface (`OrtModule`), in the models layer so that loading a
user's ONNX file (models/loading.py) and the treatments that produce ONNX graphs (static_int8) share it."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["OrtModule"]


_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime on the CPU, behind the nn.Module interface: torch tensors in (by
    position or by input name, each converted to the dtype the graph declares), the first output out as a
    torch tensor. The session is rebuilt from the stored bytes after a copy or unpickling, with torch's
    current thread count."""

    def __init__(self, onnx_bytes: bytes, info: dict[str, Any] | None = None):
        super().__init__()
        self.register_buffer("onnx_model", torch.frombuffer(bytearray(onnx_bytes), dtype=torch.uint8))
        self.info = info or {}
        self._session = self._make_session()

    def _make_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            self.onnx_model.numpy().tobytes(), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [(i.name, _ORT_DTYPES.get(i.type, np.float32)) for i in session.get_inputs()]
        return session

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self._inputs]

    def weight_counts(self) -> tuple[int, int]:
        """(weights, non-zero weights) in the ONNX graph's initializers, as `count_parameters` counts a torch
        model's: scales, zero points and shape constants are left out."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.load_from_string(self.onnx_model.numpy().tobytes()).graph
        total = nonzero = 0
        for init in graph.initializer:
            if "scale" in init.name or "zero_point" in init.name or init.data_type == onnx.TensorProto.INT64:
                continue
            values = numpy_helper.to_array(init)
            total += values.size
            nonzero += int(np.count_nonzero(values))
        return total, nonzero

    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        if len(args) + len(kwargs) != len(self._inputs):
            raise ValueError(
                f"the ONNX model takes {len(self._inputs)} inputs ({', '.join(self.input_names)}); "
                f"got {len(args) + len(kwargs)}"
            )
        feeds = {}
        for (name, _dtype), value in zip(self._inputs, args, strict=False):
            feeds[name] = value
        for name, value in kwargs.items():
            if name not in self.input_names:
                raise ValueError(
                    f"the ONNX model has no input {name!r}; inputs: {', '.join(self.input_names)}"
                )
            feeds[name] = value
        dtypes = dict(self._inputs)
        for name, value in feeds.items():
            # At these model sizes a call costs microseconds, so skip conversions that would be no-ops.
            array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
            feeds[name] = array if array.dtype == dtypes[name] else array.astype(dtypes[name])
        return torch.from_numpy(self._session.run(None, feeds)[0])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_session", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = self._make_session()

    def __deepcopy__(self, memo: dict) -> OrtModule:
        return OrtModule(self.onnx_model.numpy().tobytes(), copy.deepcopy(self.info, memo))
