"""Tiny seeded stand-ins for classifiers: anything with ``cam(x) -> (N, 20, h, w)``, no downloads."""
from __future__ import annotations

import torch
from torch import nn


class TinyClassifier(nn.Module):
    """A seeded stand-in for a classifier: a strided conv, then the 1x1 class conv as the CAM."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(8, 20, 1, bias=False)

    def cam(self, x):
        return self.classifier(self.features(x))


class RedChannel(nn.Module):
    """Class 0's map is the normalised red channel itself: the CAM has a hand-computable answer."""

    def cam(self, x):
        maps = torch.zeros(x.shape[0], 20, *x.shape[2:])
        maps[:, 0] = x[:, 0]
        return maps

    def forward(self, x):
        return self.cam(x).mean(dim=(2, 3))


class ColourClasses(nn.Module):
    """Classes 0, 1 and 2 are the normalised red, green and blue channels: each class lights up
    only where the image has its colour, so different classes activate different regions with
    hand-computable maps; the score of a class is its map's mean (positive where the colour covers
    enough of the input)."""

    def cam(self, x):
        maps = torch.zeros(x.shape[0], 20, *x.shape[2:])
        maps[:, :3] = x[:, :3]
        return maps

    def forward(self, x):
        return self.cam(x).mean(dim=(2, 3))
