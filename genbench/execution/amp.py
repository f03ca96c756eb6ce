"""Mixed precision: the autocast dtype, the fp16 gradient scaler, and telling a scaler's
overflow from a divergence."""

from __future__ import annotations

import contextlib

import torch

from genbench.api.model import GenerativeModel

#: Below this gradient scale a non-finite loss is a divergence, not an fp16 overflow.
MIN_AMP_SCALE = 1.0


def mixed_precision(enabled: bool, scaler: torch.amp.GradScaler | None
                    ) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """The autocast dtype (None: no autocast) and the gradient scaler of a training.
    ``enabled`` (CUDA only): bfloat16 where supported, else float16 with a gradient scaler
    (``scaler`` when given, else a new one); otherwise ``scaler`` as given."""
    amp_dtype = None
    if enabled:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if amp_dtype is torch.float16 and scaler is None:
            scaler = torch.amp.GradScaler("cuda")
    return amp_dtype, scaler


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` in ``amp_dtype``; a no-op context without one."""
    return (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
            else contextlib.nullcontext())


def scaler_overflowed(model: GenerativeModel, scaler: torch.amp.GradScaler,
                      backoffs_before: int) -> bool:
    """Whether the scaler skipped one of the step's optimizer updates (it lowered its scale,
    counted in ``optimizer_step``, so a backoff is seen even when a later update of the same
    step grew the scale back) and its scale is still high enough for an overflow to explain
    a non-finite loss."""
    return model._amp_backoffs > backoffs_before and scaler.get_scale() >= MIN_AMP_SCALE
