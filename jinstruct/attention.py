"""The one conversion of a boolean attention mask into the additive form eager attention adds to the
scores: 0 where a query may attend, the dtype's minimum where it may not."""

from __future__ import annotations

import torch


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.full(allowed.shape, torch.finfo(dtype).min, dtype=dtype, device=allowed.device).masked_fill_(
        allowed, 0.0
    )
