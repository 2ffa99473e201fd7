"""Self-supervised training of the refinement network: the refinement losses, no ground truth.

The network predicts (albedo log-ratio, SH residual grid) from a photo's face tile; the loss is the same
`refine.losses.refinement_loss` that the test-time optimisation minimises (re-rendering + regularisers).
Launched with `torchrun --nproc_per_node N`, it trains with DistributedDataParallel (NCCL on CUDA, Gloo on
CPU), each process on its share of the photos; launched plainly, it runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.refine.illumination import resize_grid
from inference_core.refine.inputs import RefineInputs
from inference_core.refine.losses import refinement_loss
from inference_core.refine.network import RefineNet
from inference_core.refine.settings import LossWeights
from inference_core.train.dataset import collate

STAGE = "train"


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation of the network (the loss weights are the refinement's, see RefineSettings)."""

    epochs: int = 20
    batch_size: int = 4
    learning_rate: float = 1e-3
    base_channels: int = 16
    grid_resolution: int = 32  # the residual grid is resized to this before the loss, as in refine()
    low_frequency_resolution: int = 32
    mirror_probability: float = 0.5  # left/right flips of a batch (the face tile is symmetric in UV)
    seed: int = 0
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class Distributed:
    """Where this process stands in a torchrun launch (rank 0 of 1 when launched plainly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (env:// rendezvous), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def batch_loss(network: torch.nn.Module, batch: RefineInputs, settings: TrainSettings) -> tuple[torch.Tensor, dict]:
    """The refinement loss of the network's prediction for one batch."""
    log_ratio, grid = network(batch)
    return refinement_loss(batch, log_ratio, resize_grid(grid, settings.grid_resolution), settings.loss_weights,
                           settings.low_frequency_resolution)


def train(dataset: torch.utils.data.Dataset, settings: TrainSettings | None = None, *,
          device: torch.device | str = "cpu", steps: int | None = None,
          progress: ProgressCallback = ignore_progress) -> tuple[RefineNet, list[float]]:
    """Train a RefineNet on cached face tiles -> (the network, loss of every step on this process).

    `steps` stops early after that many optimiser steps (for tests and smoke runs).
    """
    settings = settings or TrainSettings()
    device = torch.device(device)
    place = start_distributed(device)
    if device.type == "cuda" and place.enabled:
        device = torch.device("cuda", place.local_rank)
    torch.manual_seed(settings.seed)
    resolution = dataset[0].resolution
    network = RefineNet(settings.base_channels, input_resolution=resolution).to(device)
    model = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None) \
        if place.enabled else network
    sampler = torch.utils.data.DistributedSampler(dataset, place.world_size, place.rank, shuffle=True,
                                                  seed=settings.seed) if place.enabled else None
    loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size, shuffle=sampler is None,
                                         sampler=sampler, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(settings.seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    flips = torch.Generator().manual_seed(settings.seed + place.rank)
    losses: list[float] = []
    total_steps = steps or settings.epochs * len(loader)
    for epoch in range(settings.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for batch in loader:
            if torch.rand((), generator=flips) < settings.mirror_probability:
                batch = batch.mirrored()
            optimiser.zero_grad(set_to_none=True)
            loss, _ = batch_loss(model, batch.to(device), settings)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if place.is_main:
                progress(STAGE, len(losses) / total_steps, f"epoch {epoch + 1}: loss {losses[-1]:.5f}")
            if len(losses) >= total_steps:
                return network, losses
    return network, losses
