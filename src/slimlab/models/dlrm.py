"""A DLRM-style click model, after Naumov et al. (2019) and facebookresearch/dlrm (`dlrm_s_pytorch.py`).

Sparse features (index lists) go through sum-pooled `nn.EmbeddingBag` tables, dense features through a
bottom MLP, the interaction is the pairwise dot products of all these vectors (or their concatenation),
and a top MLP gives one click logit.

Inputs. `DLRM.forward(dense, sparse)` takes `dense` float32 (batch, num_dense) and `sparse` int64
(batch, tables, bag_size); an index of -1 is padding (a shorter bag), so every bag has the same length and
the model exports to ONNX with a dynamic batch axis. The rest of slimlab's pipeline (trainer, evaluators,
treatments) still moves one float32 array per sample, so the registered model `"dlrm"` is `PackedDLRM`: it
takes `[dense | sparse ids as float]` in one row and returns two class logits `[0, z]`, whose softmax is
`sigmoid(z)` and whose cross-entropy is the binary log loss of `z`. Ids are exact in float32 below 2**24,
which `DLRMParams` enforces on the table sizes.

Differences from the reference, on purpose: the dot interaction needs the bottom MLP to end at the embedding
dimension, so `bottom_mlp` lists hidden widths and a last Linear to `embedding_dim` is added when its last
width differs (the reference exits with an error instead); `top_mlp` ends with 1 (the logit layer, no
sigmoid: the loss takes logits).
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimlab.models.registry import MODELS, ModelParams, ModelSpec

MAX_FLOAT_EXACT_ID = 2**24  # float32 holds every integer up to here exactly


class DLRMParams(ModelParams):
    num_dense: int = Field(default=13, ge=1, description="dense (float) features per sample")
    table_rows: list[int] = Field(
        default=[80_000] * 8,
        min_length=1,
        description="rows of each embedding table (one per sparse feature)",
    )
    bag_size: int = Field(default=4, ge=1, description="indices per lookup (shorter bags are padded with -1)")
    embedding_dim: int = Field(default=64, ge=1)
    bottom_mlp: list[int] = Field(default=[128, 128, 128, 128], description="hidden widths of the bottom MLP")
    top_mlp: list[int] = Field(
        default=[512, 512, 512, 256, 1], min_length=1, description="widths of the top MLP, ending with 1"
    )
    interaction: Literal["dot", "cat"] = "dot"

    @model_validator(mode="after")
    def _check(self) -> DLRMParams:
        if self.top_mlp[-1] != 1:
            raise ValueError(f"top_mlp must end with 1 (the click logit); got {self.top_mlp}")
        if any(r < 1 or r > MAX_FLOAT_EXACT_ID for r in self.table_rows):
            raise ValueError(f"every table needs 1..{MAX_FLOAT_EXACT_ID} rows; got {self.table_rows}")
        return self

    @property
    def input_width(self) -> int:
        return self.num_dense + len(self.table_rows) * self.bag_size


def mlp(widths: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Table(nn.Module):
    """One embedding table: sum-pooled bags of fixed length with -1 as padding. Every table in a DLRM
    (dense, quantized, compressed) has this interface: (batch, bag) int64 ids -> (batch, dim) float32."""

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.rows, self.dim = rows, dim
        self.bag = nn.EmbeddingBag(rows, dim, mode="sum")
        bound = (1.0 / rows) ** 0.5  # the reference's uniform init
        nn.init.uniform_(self.bag.weight, -bound, bound)

    def forward(self, ids: Tensor) -> Tensor:
        weights = (ids >= 0).to(self.bag.weight.dtype)
        return self.bag(ids.clamp(min=0), per_sample_weights=weights).float()


class DLRM(nn.Module):
    def __init__(self, params: DLRMParams):
        super().__init__()
        self.params = params
        d = params.embedding_dim
        bottom = [params.num_dense, *params.bottom_mlp]
        if bottom[-1] != d:
            bottom.append(d)
        self.bottom = mlp(bottom, last_activation=True)
        self.tables = nn.ModuleList(Table(rows, d) for rows in params.table_rows)
        n = len(params.table_rows) + 1
        width = d + n * (n - 1) // 2 if params.interaction == "dot" else d * n
        self.top = mlp([width, *params.top_mlp], last_activation=False)
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("_pairs", rows * n + cols, persistent=False)

    def embed(self, sparse: Tensor) -> list[Tensor]:
        return [table(sparse[:, i]) for i, table in enumerate(self.tables)]

    def interact(self, x: Tensor, embedded: list[Tensor]) -> Tensor:
        if self.params.interaction == "cat":
            return torch.cat([x, *embedded], dim=1)
        t = torch.stack([x, *embedded], dim=1)  # (batch, tables + 1, dim)
        z = torch.bmm(t, t.transpose(1, 2)).flatten(1)
        return torch.cat([x, z[:, self._pairs]], dim=1)

    def forward(self, dense: Tensor, sparse: Tensor) -> Tensor:
        """The click logit, (batch,)."""
        x = self.bottom(dense)
        return self.top(self.interact(x, self.embed(sparse))).squeeze(1)


class PackedDLRM(nn.Module):
    """A DLRM that takes one float32 row `[dense | ids]` and returns class logits `[0, z]` (see module)."""

    def __init__(self, dlrm: DLRM):
        super().__init__()
        self.dlrm = dlrm

    @property
    def params(self) -> DLRMParams:
        return self.dlrm.params

    def unpack(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.params
        if x.dtype not in (torch.float32, torch.float64):
            # bf16 keeps 8 bits of mantissa: ids above 256 would be rounded to other rows.
            raise TypeError(f"packed DLRM input must be float32 (ids are exact only there); got {x.dtype}")
        dense = x[:, : p.num_dense].float()
        sparse = x[:, p.num_dense :].round().long().reshape(-1, len(p.table_rows), p.bag_size)  # any batch
        return dense, sparse

    def forward(self, x: Tensor) -> Tensor:
        z = self.dlrm(*self.unpack(x))
        return torch.stack([torch.zeros_like(z), z], dim=1)


def pack(dense, sparse):
    """The packed rows of `PackedDLRM` from dense (n, num_dense) and sparse (n, tables, bag) arrays."""
    import numpy as np

    return np.concatenate([dense, sparse.reshape(len(sparse), -1)], axis=1).astype(np.float32)


def unpack_dlrm(model: nn.Module) -> DLRM | None:
    """The two-input DLRM inside `model` (itself, or a PackedDLRM's), or None."""
    if isinstance(model, DLRM):
        return model
    inner = getattr(model, "dlrm", None)
    return inner if isinstance(inner, DLRM) else None


def example_inputs(params: DLRMParams, batch: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Valid random inputs (dense floats, in-range int64 ids) for a model of `params`: the DLRM's own
    example-input path, for export and benchmarks that cannot feed it `torch.randn`."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(batch, params.num_dense, generator=g)
    sparse = torch.stack(
        [torch.randint(0, rows, (batch, params.bag_size), generator=g) for rows in params.table_rows], dim=1
    )
    return dense, sparse


def _build(params: DLRMParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if num_classes != 2:
        raise ValueError(f"the DLRM is a click (binary) model; the data has {num_classes} classes")
    if tuple(input_shape) != (params.input_width,):
        raise ValueError(
            f"the DLRM expects rows of {params.num_dense} dense + {len(params.table_rows)} tables x "
            f"{params.bag_size} ids = {params.input_width} values; the data has shape {tuple(input_shape)}"
        )
    return PackedDLRM(DLRM(params))


MODELS.register("dlrm")(ModelSpec(DLRMParams, _build))


def export_dlrm_onnx(model: nn.Module, path, batch: int = 2) -> None:
    """The two-input DLRM inside `model` as ONNX (inputs `dense` and `sparse`, output `p_click_logit`),
    with a dynamic batch axis, by torch.onnx's exporter from torch.export."""
    import logging
    import warnings

    dlrm = unpack_dlrm(model)
    if dlrm is None:
        raise TypeError(f"{type(model).__name__} holds no DLRM")
    dlrm = dlrm.eval()
    axis = torch.export.Dim("batch", min=1, max=1 << 16)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # one warning per torchvision op when torchvision is absent
    try:
        with warnings.catch_warnings():
            # The exporter's own deprecated pytree use and its axis-renaming note; nothing for us to fix.
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            torch.onnx.export(
                dlrm,
                example_inputs(dlrm.params, batch),
                str(path),
                dynamo=True,
                verbose=False,
                input_names=["dense", "sparse"],
                output_names=["p_click_logit"],
                dynamic_shapes=({0: axis}, {0: axis}),
                external_data=False,
            )
    finally:
        registration.setLevel(level)
