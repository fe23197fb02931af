"""A model defined outside backdoor_nb, for `backdoor_nb scan --arch benchmarks/outside_arch.py:make`.

A small residual network with BatchNorm and a global-average-pool head (two stages of two basic blocks), which
takes [0, 1] images and normalizes them itself. Nothing here imports backdoor_nb: it stands for a user's model.
"""
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())
    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(h)) + self.skip(x))

class SmallResNet(nn.Module):
    def __init__(self, channels=1, n_classes=10, width=8, mean=0.5, std=0.25):
        super().__init__()
        self.register_buffer('mean', torch.full((1, channels, 1, 1), float(mean)))
        self.register_buffer('std', torch.full((1, channels, 1, 1), float(std)))
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layers = nn.Sequential(Block(width, width, 1), Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 2 * width, 1))
        self.head = nn.Linear(2 * width, n_classes)
    def forward(self, x):
        h = self.layers(self.stem((x - self.mean) / self.std))
        return self.head(h.mean((2, 3)))

def make(channels=1, n_classes=10, width=8):
    "The architecture, untrained: `backdoor_nb scan` loads the weights into it."
    return SmallResNet(channels, n_classes, width)
