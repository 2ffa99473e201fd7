"""Detail refinement (the paper's second module): final high-frequency albedo + detailed illumination.

- settings.py      RefineSettings and the loss weights (each weight doubles as an ablation switch)
- inputs.py        the face tile of (UVTexture, PriorAlbedo) as batched tensors
- illumination.py  per-texel SH map = global SH + smooth residual grid
- losses.py        re-rendering loss and the regularisers that keep albedo and illumination apart
- optimise.py      `refine()`: test-time optimisation (started from the network when weights are given)
- network.py       the small refinement U-Net and its safetensors weights
- synthetic.py     a face tile with known albedo and illumination (tests, benchmarks, evaluation)
"""
from inference_core.refine.optimise import refine
from inference_core.refine.settings import LossWeights, RefineSettings

__all__ = ["LossWeights", "RefineSettings", "refine"]
