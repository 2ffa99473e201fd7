"""Self-supervised training of the refinement network (no ground-truth reflectance).

- dataset.py  face tiles of real photos through the real stages, cached as .npz
- trainer.py  the refinement losses on the network's predictions; DDP under torchrun
- __main__.py `python -m inference_core.train --images DIR --out weights.safetensors --epochs N`
"""
from inference_core.train.dataset import FaceTileDataset, build_cache
from inference_core.train.trainer import TrainSettings, train

__all__ = ["FaceTileDataset", "TrainSettings", "build_cache", "train"]
