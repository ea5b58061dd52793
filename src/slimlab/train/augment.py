"""Batch augmentation for training: 1D signals (MNIST-1D) and images (digits, users' image tensors).

Why kornia and not torchvision: torchvision's wheels are built against one torch build each, so on a CPU
machine pip replaces the CPU torch with the several-GB CUDA build to satisfy it, whereas kornia is pure
Python on top of whatever torch is installed, and its augmentations take whole batches on the training
device (one kernel per batch, not a Python loop per sample). kornia has no 1D signal ops, so the signal
ops below (shift, roll, amplitude scaling, time warping, 1D mixup and cutmix) are short hand-written
tensor code; additive noise on signals reuses kornia's op on a (B, 1, C, L) view.

The augmenter is called by the trainer on training batches only. Validation and test data go through
`predict_logits`, which never sees it (tests/test_augment.py checks that).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from slimlab.errors import SlimlabError
from slimlab.identity import Hparams

SIGNAL_OPS = ("shift", "roll", "scale", "noise", "time_warp")
IMAGE_OPS = (
    "hflip",
    "vflip",
    "crop",
    "rotate",
    "affine",
    "brightness",
    "noise",
    "randaugment",
    "trivialaugment",
)
PRESETS: dict[str, dict[str, Any]] = {
    "signal": {"ops": ["shift", "scale", "noise", "time_warp"]},
    "signal_mixup": {"ops": ["shift", "scale", "noise", "time_warp"], "mix": "mixup"},
    "image": {"ops": ["crop", "rotate", "affine", "brightness", "noise"]},
    "trivialaugment": {"ops": ["trivialaugment"]},
    "randaugment": {"ops": ["randaugment"]},
}


class AugmentConfig(Hparams):
    """`[train] augment = "signal"` (a preset) or a table: ops, their strengths, and an optional mix.
    Fields at their defaults stay out of trial ids (slimlab.identity)."""

    ops: list[str] = Field(
        default_factory=list,
        description=f"applied in order; signals: {', '.join(SIGNAL_OPS)}; images: {', '.join(IMAGE_OPS)}",
    )
    p: float = Field(default=0.5, ge=0, le=1, description="probability that each op is applied to a sample")
    mix: Literal["none", "mixup", "cutmix"] = Field(default="none", description="mix pairs of samples")
    mix_p: float = Field(default=1.0, ge=0, le=1, description="share of batches that are mixed")
    cutmix_beta: float = Field(default=1.0, gt=0, description="cutmix's area ratio ~ Beta(beta, beta)")
    max_shift: float = Field(default=0.1, ge=0, lt=1, description="shift/roll: most of the length moved")
    scale: tuple[float, float] = Field(default=(0.8, 1.2), description="signal amplitude factor range")
    noise_std: float = Field(default=0.05, ge=0, description="additive Gaussian noise (input units)")
    warp: float = Field(default=0.2, ge=0, lt=1, description="time warp: spread of the local speed (log)")
    degrees: float = Field(default=15.0, ge=0, le=180, description="rotate/affine: largest rotation")
    translate: float = Field(default=0.1, ge=0, lt=1, description="affine: largest shift, share of the side")
    crop_padding: int = Field(default=1, ge=0, description="crop: pad each side, then crop to size")
    brightness: float = Field(default=0.2, ge=0, le=1, description="brightness and contrast jitter")
    image_shape: tuple[int, int, int] | None = Field(
        default=None,
        description="(C, H, W) of flat inputs that are images, e.g. [1, 8, 8] for digits",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in PRESETS:
                raise ValueError(f"unknown augmentation preset {value!r}; known: {', '.join(PRESETS)}")
            return dict(PRESETS[value])
        if isinstance(value, list):
            return {"ops": value}
        return value

    @model_validator(mode="after")
    def _known_ops(self) -> AugmentConfig:
        known = set(SIGNAL_OPS) | set(IMAGE_OPS)
        for op in self.ops:
            if op not in known:
                raise ValueError(
                    f"unknown augmentation op {op!r}; signals: {', '.join(SIGNAL_OPS)}; "
                    f"images: {', '.join(IMAGE_OPS)}"
                )
        if not self.ops and self.mix == "none":
            raise ValueError("an augmentation needs at least one op or a mix")
        if self.scale[0] <= 0 or self.scale[0] > self.scale[1]:
            raise ValueError(f"`scale` must be (low, high) with 0 < low <= high; got {self.scale}")
        return self

    def kind_for(self, input_shape: tuple[int, ...]) -> Literal["signal", "image"]:
        """Images are (C, H, W) inputs, or flat ones with `image_shape`; everything else is a signal."""
        if self.image_shape is not None or len(input_shape) == 3:
            return "image"
        return "signal"


# --- 1D signal ops (hand-written: kornia has none for 1D) ------------------------------------------------


def _as_signal(x: Tensor) -> Tensor:
    """(B, L) or (B, C, L) -> (B, C, L)."""
    return x.unsqueeze(1) if x.dim() == 2 else x


def _chosen(x: Tensor, p: float) -> Tensor:
    """A (B, 1, 1) mask of the samples an op applies to."""
    return (torch.rand(x.shape[0], 1, 1, device=x.device) < p).to(x.dtype)


def _shift(x: Tensor, max_shift: float, circular: bool) -> Tensor:
    """Translate each signal by a random whole number of steps; `roll` wraps around, `shift` repeats the
    edge value (zero filling would add a step that the data never has)."""
    b, _, length = x.shape
    most = max(1, round(max_shift * length))
    steps = torch.randint(-most, most + 1, (b, 1), device=x.device)
    index = torch.arange(length, device=x.device).unsqueeze(0) - steps
    index = index % length if circular else index.clamp(0, length - 1)
    return x.gather(2, index.unsqueeze(1).expand_as(x))


def _time_warp(x: Tensor, strength: float, knots: int = 4) -> Tensor:
    """A smooth, monotone random warp of the time axis: the local speed is exp(N(0, strength)) at a few
    knots, interpolated, integrated into sampling positions that span the whole signal, and the signal is
    read at those positions by linear interpolation."""
    b, _, length = x.shape
    speed = torch.exp(strength * torch.randn(b, 1, knots, device=x.device))
    speed = F.interpolate(speed, size=length, mode="linear", align_corners=True).squeeze(1)
    position = torch.cumsum(speed, dim=1)
    position = (position - position[:, :1]) / (position[:, -1:] - position[:, :1]) * (length - 1)
    low = position.floor().long().clamp(0, length - 1)
    high = (low + 1).clamp(max=length - 1)
    frac = (position - low).unsqueeze(1).to(x.dtype)
    idx = lambda i: i.unsqueeze(1).expand_as(x)  # noqa: E731
    return x.gather(2, idx(low)) * (1 - frac) + x.gather(2, idx(high)) * frac


def _signal_noise(x: Tensor, std: float, p: float) -> Tensor:
    import kornia.augmentation as K

    b, c, length = x.shape
    return K.RandomGaussianNoise(std=std, p=p)(x.reshape(b, 1, c, length)).reshape(b, c, length)


def _mix_signal(x: Tensor, y: Tensor, config: AugmentConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mixup (Zhang et al. 2018) or cutmix (Yun et al. 2019) along the time axis: (x, y_a, y_b, weight of
    y_a). kornia's mix ops are 2D-only; these follow them (mixup's lambda ~ U(0, 1), cutmix's segment
    length ~ Beta(beta, beta))."""
    b, _, length = x.shape
    perm = torch.randperm(b, device=x.device)
    if config.mix == "mixup":
        lam = torch.rand(b, device=x.device)
        mixed = x * (1 - lam.view(b, 1, 1)) + x[perm] * lam.view(b, 1, 1)
        return mixed, y, y[perm], 1 - lam
    beta = torch.distributions.Beta(config.cutmix_beta, config.cutmix_beta)
    cut = (beta.sample((b,)).to(x.device) * length).round().long()
    start = (torch.rand(b, device=x.device) * (length - cut + 1)).floor().long()
    t = torch.arange(length, device=x.device).unsqueeze(0)
    inside = ((t >= start.unsqueeze(1)) & (t < (start + cut).unsqueeze(1))).unsqueeze(1)
    mixed = torch.where(inside, x[perm], x)
    return mixed, y, y[perm], 1 - cut.to(x.dtype) / length


# --- images (kornia) -------------------------------------------------------------------------------------


def _image_pipeline(config: AugmentConfig, size: tuple[int, int]) -> list[Callable[[Tensor], Tensor]]:
    import kornia.augmentation as K
    from kornia.augmentation.auto import RandAugment, TrivialAugment

    p = config.p
    make: dict[str, Callable[[], Callable[[Tensor], Tensor]]] = {
        "hflip": lambda: K.RandomHorizontalFlip(p=p),
        "vflip": lambda: K.RandomVerticalFlip(p=p),
        "crop": lambda: K.RandomCrop(size, padding=config.crop_padding, p=p),
        "rotate": lambda: K.RandomRotation(config.degrees, p=p),
        "affine": lambda: K.RandomAffine(
            degrees=config.degrees, translate=(config.translate, config.translate), scale=(0.9, 1.1), p=p
        ),
        "brightness": lambda: K.ColorJitter(brightness=config.brightness, contrast=config.brightness, p=p),
        # Noise is added after the [0, 1] rescaling, so its std is in units of the batch's range.
        "noise": lambda: K.RandomGaussianNoise(std=config.noise_std, p=p),
        "randaugment": lambda: RandAugment(n=2, m=10),
        "trivialaugment": lambda: TrivialAugment(),
    }
    return [make[op]() for op in config.ops]


def _mix_image(x: Tensor, y: Tensor, config: AugmentConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    import kornia.augmentation as K

    if config.mix == "mixup":
        mixed, labels = K.RandomMixUpV2(data_keys=["input", "class"], p=1.0)(x, y)
        # kornia's mixup: out = (1 - lam) * x + lam * x[perm], labels (B, 3) = [y, y_perm, lam].
        return mixed, labels[:, 0].long(), labels[:, 1].long(), 1 - labels[:, 2]
    op = K.RandomCutMixV2(
        data_keys=["input", "class"], p=1.0, beta=config.cutmix_beta, use_correct_lambda=True
    )
    mixed, labels = op(x, y)
    # kornia's cutmix (use_correct_lambda): labels (1, B, 3) = [y, y_perm, share of the image kept from y].
    labels = labels[0]
    return mixed, labels[:, 0].long(), labels[:, 1].long(), labels[:, 2]


# --- the augmenter ---------------------------------------------------------------------------------------


class Augmenter:
    """`augment(x, y) -> (x', target)`: x' has x's shape, on x's device; target is y itself, or soft
    labels (B, num_classes) when the batch was mixed (cross-entropy takes either)."""

    def __init__(self, config: AugmentConfig, input_shape: tuple[int, ...], num_classes: int):
        self.config = config
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.kind = config.kind_for(self.input_shape)
        if self.kind == "signal":
            bad = [op for op in config.ops if op not in SIGNAL_OPS]
            if bad or len(self.input_shape) not in (1, 2):
                raise SlimlabError(
                    f"`train.augment.ops`: {', '.join(bad) or 'these ops'} need images, but the inputs "
                    f"have shape {self.input_shape}; set `image_shape` (C, H, W) for flat images, or use "
                    f"signal ops: {', '.join(SIGNAL_OPS)}"
                )
        else:
            bad = [op for op in config.ops if op not in IMAGE_OPS]
            shape = config.image_shape or self.input_shape
            if bad or math.prod(shape) != math.prod(self.input_shape):
                raise SlimlabError(
                    f"`train.augment`: image ops on inputs of shape {self.input_shape} with image_shape "
                    f"{config.image_shape}: "
                    + (f"{', '.join(bad)} are signal ops" if bad else "the sizes do not match")
                )
            self.image_shape = tuple(shape)
            self.image_ops = _image_pipeline(config, (shape[1], shape[2]))

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad(), warnings.catch_warnings():
            # kornia warns about its own defaults on every call (e.g. cutmix's lambda), which we set.
            warnings.simplefilter("ignore", DeprecationWarning)
            out = self._signal(x) if self.kind == "signal" else self._image(x)
            if self.config.mix != "none" and torch.rand(()).item() < self.config.mix_p:
                return self._mix(out, y)
        return out, y

    def _signal(self, x: Tensor) -> Tensor:
        c, s = self.config, _as_signal(x)
        for op in c.ops:
            if op in ("shift", "roll"):
                moved = _shift(s, c.max_shift, circular=op == "roll")
                m = _chosen(s, c.p)
                s = moved * m + s * (1 - m)
            elif op == "scale":
                low, high = c.scale
                factor = low + (high - low) * torch.rand(s.shape[0], 1, 1, device=s.device)
                m = _chosen(s, c.p)
                s = s * (factor * m + (1 - m))
            elif op == "noise":
                s = _signal_noise(s, c.noise_std, c.p)
            elif op == "time_warp":
                m = _chosen(s, c.p)
                s = _time_warp(s, c.warp) * m + s * (1 - m)
        return s.reshape(x.shape)

    def _image(self, x: Tensor) -> Tensor:
        images = x.reshape(x.shape[0], *self.image_shape)
        # kornia's intensity ops (brightness, RandAugment's solarize, posterize...) expect [0, 1]; our
        # inputs are standardised, so each batch is mapped to [0, 1] and back with its own range.
        low, high = images.amin(), images.amax()
        span = (high - low).clamp_min(1e-6)
        images = (images - low) / span
        for op in self.image_ops:
            images = op(images)
        return (images.clamp(0, 1) * span + low).reshape(x.shape)

    def _mix(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "signal":
            mixed, y_a, y_b, keep = _mix_signal(_as_signal(x), y, self.config)
            mixed = mixed.reshape(x.shape)
        else:
            images = x.reshape(x.shape[0], *self.image_shape)
            mixed, y_a, y_b, keep = _mix_image(images, y, self.config)
            mixed = mixed.reshape(x.shape)
        keep = keep.to(x.dtype).unsqueeze(1)
        target = keep * F.one_hot(y_a, self.num_classes).to(x.dtype)
        target = target + (1 - keep) * F.one_hot(y_b, self.num_classes).to(x.dtype)
        return mixed, target


def build_augmenter(
    config: AugmentConfig | None, input_shape: tuple[int, ...], num_classes: int
) -> Augmenter | None:
    return None if config is None else Augmenter(config, input_shape, num_classes)
