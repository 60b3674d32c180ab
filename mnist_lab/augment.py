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


def shifted(X, right=0, down=0):
    """Return ``X`` (normalised ``N x 1 x 28 x 28``) moved ``right`` and ``down`` pixels (negative: left, up); the
    pixels that come in are black, like MNIST's background."""
    out = torch.full_like(X, BACKGROUND)
    h, w = X.shape[-2:]
    rows_to, rows_from = slice(max(down, 0), h + min(down, 0)), slice(max(-down, 0), h - max(down, 0))
    cols_to, cols_from = slice(max(right, 0), w + min(right, 0)), slice(max(-right, 0), w - max(right, 0))
    out[..., rows_to, cols_to] = X[..., rows_from, cols_from]
    return out
