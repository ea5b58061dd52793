"""The seeded trainer."""

from slimlab.train.seeding import seed_everything
from slimlab.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer", "seed_everything"]
