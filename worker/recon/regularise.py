"""The parts of nvdiffrec's optimisation that know nothing of rendering: the smoothness terms on the mesh and the
optimiser that steps it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import ops

CREASE_DEGREES = 10.0  # normals of neighbours further apart than this are a crease, free to stay


def uniform_laplacian(values: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Each vertex's value minus the mean over its mesh neighbours (V, C): zero where the values are smooth.

    Neighbours are gathered over both directions of every triangle edge, so on a closed mesh each counts twice,
    which leaves the mean unchanged.
    """
    source = faces[:, [0, 1, 2, 1, 2, 0]].reshape(-1)
    target = faces[:, [1, 2, 0, 0, 1, 2]].reshape(-1)
    degree = torch.bincount(source, minlength=values.shape[0]).clamp_min(1).to(values.dtype)
    neighbours = torch.zeros_like(values).index_add(0, source, values[target])
    return values - neighbours / degree[:, None]


def adjacent_faces(faces: torch.Tensor) -> torch.Tensor:
    """(E, 2): the two triangles on each side of every interior edge, each pair once."""
    twins = ops.twin_half_edges(faces).reshape(-1)
    half_edges = torch.arange(twins.numel(), device=faces.device)
    once = twins > half_edges
    return torch.stack((half_edges[once] // 3, twins[once] // 3), dim=1)


def normal_consistency(vertices: torch.Tensor, faces: torch.Tensor, pairs: torch.Tensor,
                       crease_degrees: float = CREASE_DEGREES) -> torch.Tensor:
    """Mean over adjacent triangles of a penalty on d = 1 - cos(angle between their normals): about d for small
    angles (0 on a plane, whatever its triangles), levelling off at the crease angle's d so that true creases
    (up to a right angle) cost almost nothing more to keep, and growing again as d - 1 past a right angle,
    where two triangles fold over each other."""
    corners = vertices[faces]
    normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=1)
    bend = 1 - (normals[pairs[:, 0]] * normals[pairs[:, 1]]).sum(dim=1)
    crease = 1 - math.cos(math.radians(crease_degrees))
    return (crease * bend / (bend + crease) + (bend - 1).clamp_min(0)).mean()


class Adam:
    """Adam (Kingma and Ba) on a few tensors. torch.optim is not used: its first use imports torch._dynamo,
    a stall of seconds on a CPU worker during which no progress could be reported."""

    def __init__(self, groups: list[tuple[torch.Tensor, float]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.groups = [(param, lr, torch.zeros_like(param), torch.zeros_like(param)) for param, lr in groups]
        self.betas, self.eps, self.steps = betas, eps, 0

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        for param, lr, mean, square in self.groups:
            if param.grad is None:
                continue
            mean.mul_(beta1).add_(param.grad, alpha=1 - beta1)
            square.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
            denominator = (square / (1 - beta2**self.steps)).sqrt_().add_(self.eps)
            param.addcdiv_(mean, denominator, value=-lr / (1 - beta1**self.steps))
            param.grad = None
