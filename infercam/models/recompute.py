"""Training on a CPU with less memory: a module's intermediate tensors are not kept for the backward
pass but computed again there from its input (activation checkpointing). The same operations on
the same inputs give the same tensors, so the gradients are bit for bit those of a plain backward
pass; the price is one more forward pass of the module.

AffinityNet at output stride 8 keeps about 4.6 GB of activations for a batch of 16 crops of 256
pixels: more than a student's 8 GB laptop can spare beside the rest of a chapter.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def buffers_kept(module: nn.Module):
    """Puts ``module``'s buffers back as they were on exit: the second forward pass of a BatchNorm
    in training mode would update its running statistics a second time."""
    kept = [(buffer, buffer.clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in kept:
                buffer.copy_(value)


def recomputed(module, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` (a module or a function), its intermediate tensors computed again in the
    backward pass instead of kept (plainly ``module(*inputs)`` where no gradient is recorded)."""
    if not torch.is_grad_enabled():
        return module(*inputs)
    second_pass = (lambda: buffers_kept(module)) if isinstance(module, nn.Module) else contextlib.nullcontext
    return checkpoint(module, *inputs, use_reentrant=False, context_fn=lambda: (contextlib.nullcontext(), second_pass()))
