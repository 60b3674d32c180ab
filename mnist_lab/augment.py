"""Data augmentation on whole batches, on the batch's own device: small random rotations, shifts and scalings.

One ``affine_grid`` + ``grid_sample`` call warps a whole batch at once, so augmentation costs one cheap kernel per
step instead of a PIL transform per image.
"""

import math

import torch
import torch.nn.functional as F

from .data import MEAN, STD

BACKGROUND = -MEAN / STD  # a black pixel after normalisation


def random_affine(X, generator=None, degrees=10.0, shift=2.0, scale=(0.9, 1.1)):
    """Return ``X`` (normalised ``N x 1 x 28 x 28``) with each image rotated by up to ``degrees``, shifted by up
    to ``shift`` pixels and scaled by a factor in ``scale``; new pixels are black, like MNIST's background.

    The random numbers are drawn on the CPU from ``generator`` (the same augmentation on every device).
    """
    n, _, h, w = X.shape
    u = torch.rand(n, 4, generator=generator).to(X.device)
    angle = (2 * u[:, 0] - 1) * math.radians(degrees)
    factor = scale[0] + (scale[1] - scale[0]) * u[:, 1]
    tx, ty = (2 * u[:, 2] - 1) * shift * 2 / w, (2 * u[:, 3] - 1) * shift * 2 / h
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(X.dtype)
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    # grid_sample pads with 0; shift so that 0 is the black background, then shift back
    return F.grid_sample(X - BACKGROUND, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BACKGROUND
