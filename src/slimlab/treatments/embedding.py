"""Treatments for embedding tables (the DLRM's `Table`s) and for MLP precision.

Row-wise int8 and 4-bit tables use torch.ao's quantized `EmbeddingBag` (`quint8` / `quint4x2` with
float_qparams: one fp32 scale and zero point per row), the same fbgemm kernels
(`embedding_bag_byte_rowwise_offsets`, `embedding_bag_4bit_rowwise_offsets`) that torchrec and fbgemm-gpu
call on CPU. torchrec and fbgemm-gpu were not used: their wheels pin their own torch builds, which pip here
may not replace. On this CPU (torch 2.13) the int8 bag was about 2x faster than the fp32 `nn.EmbeddingBag`
on 80,000 x 64 tables at batch 64 with 10 ids per bag, with a max error of 0.05 on sums of magnitude 10.

fp16 tables store the weights in half precision and pool in it (`F.embedding_bag` supports fp16 on CPU),
returning float32: half the bytes, a sum rounded to fp16.

Table compression shrinks the row count. `method = "hash"` maps id i to row i mod m (the hashing trick of
facebookresearch/dlrm's `--max-ind-range`); `method = "qr"` is the quotient-remainder trick (Shi et al.,
KDD 2020): two tables of ceil(R/c) and c rows, embedding(i) = Q[i // c] + R[i mod c], so that every id
keeps a distinct vector with about R/c + c rows. The paper's combinations are add, multiply and concat;
add is used because its least-squares fit to a trained table has a closed form (two-way means), which is
how a compressed table is initialised from the trained dense one before the caller's trainer fine-tunes
the model (as the paper trains with compressed tables from the start, fine-tuning is needed: the fit alone
loses what R/c + c rows cannot represent).

`linear_half` casts only the Linear layers (the MLPs) to fp16 or bf16, with float32 in and out of each
layer: the generic `half_precision` casts a model's inputs, which would round a packed DLRM's ids.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from slimlab.errors import SlimlabError
from slimlab.models.dlrm import Table
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment


class QuantizedTable(nn.Module):
    """A row-wise int8 (or 4-bit) table with the `Table` interface."""

    def __init__(self, table: Table, bits: int):
        super().__init__()
        from torch.ao.nn.quantized import EmbeddingBag as QuantizedEmbeddingBag
        from torch.ao.quantization import (
            float_qparams_weight_only_qconfig,
            float_qparams_weight_only_qconfig_4bit,
        )

        self.rows, self.dim, self.bits = table.rows, table.dim, bits
        bag = nn.EmbeddingBag(table.rows, table.dim, mode="sum")
        bag.weight.data.copy_(_table_weight(table))
        bag.qconfig = (
            float_qparams_weight_only_qconfig if bits == 8 else float_qparams_weight_only_qconfig_4bit
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            self.bag = QuantizedEmbeddingBag.from_float(bag)

    def forward(self, ids: Tensor) -> Tensor:
        batch, bag = ids.shape
        weights = (ids >= 0).float().reshape(-1)
        offsets = torch.arange(0, batch * bag, bag, dtype=torch.long, device=ids.device)
        return self.bag(ids.clamp(min=0).reshape(-1), offsets, per_sample_weights=weights)


class HalfTable(nn.Module):
    def __init__(self, table: Table, dtype: torch.dtype = torch.float16):
        super().__init__()
        self.rows, self.dim = table.rows, table.dim
        self.weight = nn.Parameter(_table_weight(table).to(dtype), requires_grad=False)

    def forward(self, ids: Tensor) -> Tensor:
        weights = (ids >= 0).to(self.weight.dtype)
        return F.embedding_bag(ids.clamp(min=0), self.weight, mode="sum", per_sample_weights=weights).float()


class HashTable(nn.Module):
    """Id i -> row i mod `buckets`."""

    def __init__(self, rows: int, dim: int, buckets: int):
        super().__init__()
        self.rows, self.dim, self.buckets = rows, dim, buckets
        self.weight = nn.Parameter(torch.zeros(buckets, dim))

    def fit(self, weight: Tensor) -> None:
        """Each bucket gets the mean of the trained rows hashed into it (the least-squares fit)."""
        bucket = torch.arange(self.rows) % self.buckets
        sums = torch.zeros(self.buckets, self.dim).index_add_(0, bucket, weight)
        counts = torch.bincount(bucket, minlength=self.buckets).clamp(min=1).unsqueeze(1)
        self.weight.data.copy_(sums / counts)

    def forward(self, ids: Tensor) -> Tensor:
        weights = (ids >= 0).float()
        return F.embedding_bag(
            ids.clamp(min=0) % self.buckets, self.weight, mode="sum", per_sample_weights=weights
        )


class QRTable(nn.Module):
    """Quotient-remainder embedding with the add combination: Q[i // c] + R[i mod c]."""

    def __init__(self, rows: int, dim: int, collisions: int):
        super().__init__()
        self.rows, self.dim, self.collisions = rows, dim, collisions
        self.quotient = nn.Parameter(torch.zeros(math.ceil(rows / collisions), dim))
        self.remainder = nn.Parameter(torch.zeros(collisions, dim))

    def fit(self, weight: Tensor, iterations: int = 10) -> None:
        """Least squares of the additive two-way model to the trained rows, by alternating means."""
        ids = torch.arange(self.rows)
        q, r = ids // self.collisions, ids % self.collisions
        q_count = torch.bincount(q, minlength=len(self.quotient)).clamp(min=1).unsqueeze(1)
        r_count = torch.bincount(r, minlength=self.collisions).clamp(min=1).unsqueeze(1)
        quotient = torch.zeros_like(self.quotient)
        remainder = torch.zeros_like(self.remainder)
        for _ in range(iterations):
            quotient = torch.zeros_like(quotient).index_add_(0, q, weight - remainder[r]) / q_count
            remainder = torch.zeros_like(remainder).index_add_(0, r, weight - quotient[q]) / r_count
        self.quotient.data.copy_(quotient)
        self.remainder.data.copy_(remainder)

    def forward(self, ids: Tensor) -> Tensor:
        weights = (ids >= 0).float()
        ids = ids.clamp(min=0)
        q = F.embedding_bag(ids // self.collisions, self.quotient, mode="sum", per_sample_weights=weights)
        r = F.embedding_bag(ids % self.collisions, self.remainder, mode="sum", per_sample_weights=weights)
        return q + r


def _table_weight(table: nn.Module) -> Tensor:
    if isinstance(table, Table):
        return table.bag.weight.detach().float().cpu()
    raise SlimlabError(
        f"table {type(table).__name__} was already treated; an embedding treatment applies once"
    )


def _tables(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, table) for every embedding table of `model` (dense or already treated)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (Table, QuantizedTable, HalfTable, HashTable, QRTable)):
                yield parent, name, child


def _replace_tables(model: nn.Module, kind: str, make) -> list[dict]:
    found = list(_tables(model))
    if not found:
        raise SlimlabError(f"treatment {kind!r} needs a model with embedding tables (a DLRM); found none")
    report = []
    for parent, name, table in found:
        new = make(table)
        if new is None:
            report.append({"table": name, "rows": table.rows, "kept": True})
            continue
        parent._modules[name] = new
        report.append(
            {"table": name, "rows": table.rows, "bytes_before": _bytes(table), "bytes_after": _bytes(new)}
        )
    return report


def _bytes(module: nn.Module) -> int:
    from slimlab.evaluate import serialized_size

    return serialized_size(module, compressed=False)[0]


class EmbeddingInt8(TreatmentConfig):
    """Row-wise quantized embedding tables (torch.ao, fbgemm kernels): 8 bits (quint8) or 4 (quint4x2),
    with one float scale and offset per row. Lookups run on the CPU."""

    kind = "embedding_int8"
    bits: Literal[8, 4] = 8


@register_treatment(EmbeddingInt8)
def embedding_int8(model: nn.Module, config: EmbeddingInt8, context: TreatmentContext) -> nn.Module:
    model = model.cpu().eval()
    report = _replace_tables(model, config.kind, lambda t: QuantizedTable(t, config.bits))
    context.artifacts.setdefault("embedding", []).append({"treatment": config.to_dict(), "tables": report})
    return model


class EmbeddingFp16(TreatmentConfig):
    """fp16 embedding tables: half the bytes; bags are pooled in fp16 and returned as float32."""

    kind = "embedding_fp16"


@register_treatment(EmbeddingFp16)
def embedding_fp16(model: nn.Module, config: EmbeddingFp16, context: TreatmentContext) -> nn.Module:
    report = _replace_tables(model, config.kind, lambda t: HalfTable(t))
    context.artifacts.setdefault("embedding", []).append({"treatment": config.to_dict(), "tables": report})
    return model.eval()


class EmbeddingCompress(TreatmentConfig):
    """Fewer table rows: `method` "qr" (quotient-remainder, add) or "hash" (id mod m), keeping about
    `ratio` of each table's rows; tables under `min_rows` are kept. The compressed tables are fitted to
    the trained ones, then the whole model is fine-tuned for `finetune_epochs` with the caller's trainer."""

    kind = "embedding_compress"
    method: Literal["qr", "hash"] = "qr"
    ratio: float = Field(default=0.25, gt=0, lt=1, description="share of rows kept")
    min_rows: int = Field(default=100, ge=1, description="tables with fewer rows stay as they are")
    finetune_epochs: int = Field(default=2, ge=0)
    lr: float | None = Field(default=None, gt=0, description="fine-tuning learning rate (default: train.lr)")

    def quick(self) -> EmbeddingCompress:
        return self.model_copy(update={"finetune_epochs": min(self.finetune_epochs, 1)})


def _compressed(table: nn.Module, config: EmbeddingCompress) -> nn.Module | None:
    if table.rows < config.min_rows:
        return None
    weight = _table_weight(table)
    if config.method == "hash":
        new: HashTable | QRTable = HashTable(table.rows, table.dim, max(1, round(table.rows * config.ratio)))
    else:
        # R/c + c rows = ratio * R  =>  c = the larger root of c**2 - ratio*R*c + R = 0, at least 2
        r = table.rows
        disc = (config.ratio * r) ** 2 - 4 * r
        c = (config.ratio * r + math.sqrt(disc)) / 2 if disc > 0 else math.sqrt(r)
        new = QRTable(r, table.dim, max(2, min(r, round(c))))
    new.fit(weight)
    return new


@register_treatment(EmbeddingCompress)
def embedding_compress(model: nn.Module, config: EmbeddingCompress, context: TreatmentContext) -> nn.Module:
    report = _replace_tables(model, config.kind, lambda t: _compressed(t, config))
    entry: dict = {"treatment": config.to_dict(), "tables": report}
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        result = trainer.fit(model, data, context.seed, epochs=config.finetune_epochs, lr=config.lr)
        entry["finetune"] = {"epochs": result.epochs_run, "best_val_accuracy": result.best_val_accuracy}
    context.artifacts.setdefault("embedding", []).append(entry)
    return model.eval()


class HalfLinear(nn.Module):
    """A Linear layer kept in `dtype`, taking and returning float32."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype):
        super().__init__()
        self.linear = linear.to(dtype)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.to(self.dtype)).float()


class LinearHalf(TreatmentConfig):
    """The Linear layers (the MLPs) in fp16 or bf16; inputs, tables and outputs stay as they are."""

    kind = "linear_half"
    dtype: Literal["fp16", "bf16"] = "fp16"


@register_treatment(LinearHalf)
def linear_half(model: nn.Module, config: LinearHalf, context: TreatmentContext) -> nn.Module:
    dtype = torch.float16 if config.dtype == "fp16" else torch.bfloat16
    found = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                parent._modules[name] = HalfLinear(child, dtype)
                found += 1
    if not found:
        raise SlimlabError(f"treatment {config.kind!r} found no Linear layer to cast")
    context.artifacts["linear_half"] = {"layers": found, "dtype": config.dtype}
    return model.eval()
