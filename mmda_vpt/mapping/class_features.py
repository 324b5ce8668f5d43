"""Per-class features for the class-to-prompt map: one forward's taps, and the initial pass.

:func:`tap_features` turns the taps a DA-VPT backbone recorded in a forward into final features
and their class labels (the CLS feature of an image, or the features of the patches of a
segmentation map, labelled by the class covering most of a patch's pixels).
:func:`initial_pass_sums` runs the frozen backbone, prompts off, over the initial pass's loader
(:func:`~mmda_vpt.mapping.initial_pass_loader.build_initial_pass_loader`) and sums those features
per class. :class:`~mmda_vpt.engine.hooks.ClassPromptMappingHook` calls both.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.utils import ProgressBar

from .class_prompt_map import ClassPromptMap
from .initial_pass_loader import WHO, apply_quota, split_batch
from .labels import check_label_maps, image_labels, is_segmentation_batch, patch_labels

__all__ = ['initial_pass_sums', 'tap_features']


def tap_features(taps, data_samples: list, num_classes: int,
                 ignore_index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Final features and their class labels: (B, D), (B,) or (B, N, D), (B, N).

    Args:
        taps (PromptTaps | None): What the backbone recorded in its last forward.
        data_samples (list): The forward's data samples.
        num_classes (int): C; labels are checked against it.
        ignore_index (int): The label of unlabelled pixels.

    Returns:
        tuple[Tensor, Tensor]: Detached features and labels (-1: no class) on their device.

    Raises:
        RuntimeError: If the backbone recorded no taps.
    """
    if taps is None:
        raise RuntimeError(f'{WHO}: the backbone recorded no taps; it must run in training '
                           'mode with record_taps=True')
    if is_segmentation_batch(data_samples):
        labels = patch_labels(data_samples, taps.patch_resolution, num_classes, ignore_index)
        feats = taps.patch_final
    else:
        labels = image_labels(data_samples, num_classes, ignore_index)
        feats = taps.cls_final if taps.cls_final is not None else taps.patch_final.mean(1)
    return feats.detach(), labels.to(feats.device)


def initial_pass_sums(model: nn.Module, loader, quota: Optional[torch.Tensor], num_classes: int,
                      ignore_index: int, dim: int, device: torch.device,
                      progress: bool = False) -> tuple:
    """Per-class sums of the final features of the initial pass, prompts off, in eval mode.

    Args:
        model (nn.Module): The unwrapped classifier or segmentor (a DA-VPT backbone).
        loader (DataLoader): The pass's loader (``build_initial_pass_loader``).
        quota (Tensor, optional): (C,) images still wanted per class; None reads everything.
        num_classes (int): C.
        ignore_index (int): The label of unlabelled pixels.
        dim (int): D, the feature width.
        device (torch.device): Where the sums are kept.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        tuple: float64 sums (C, D) and counts (C,), the images served per class (C,), the
        images read and the images in the loader.
    """
    backbone = model.backbone
    segmentation = hasattr(model, 'decode_head')
    sums = torch.zeros(num_classes, dim, dtype=torch.float64, device=device)
    counts = torch.zeros(num_classes, dtype=torch.float64, device=device)
    served = torch.zeros(num_classes, dtype=torch.long)
    total = len(loader.sampler)
    bar = ProgressBar(total) if progress and total > 0 else None
    done = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), backbone.prompts_disabled():
            for data_batch in loader:
                for chunk in split_batch(data_batch, segmentation):
                    data = model.data_preprocessor(chunk, False)
                    if segmentation:  # before the first step: name the file
                        check_label_maps(data['data_samples'], num_classes, ignore_index)
                    backbone(data['inputs'])
                    feats, labels = tap_features(backbone.taps, data['data_samples'],
                                                 num_classes, ignore_index)
                    labels = apply_quota(labels, served, quota)
                    ClassPromptMap.add_to(sums, counts, feats, labels)
                size = len(data_batch['data_samples'])
                done += size
                if bar is not None:
                    bar.update(size)
                if quota is not None and bool((served >= quota).all()):
                    break
    finally:
        model.train(was_training)
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return sums, counts, served, done, total
