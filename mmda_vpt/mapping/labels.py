"""Class labels of images and patches from mmpretrain / mmsegmentation data samples."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'image_labels', 'patch_labels', 'is_segmentation_batch', 'check_label_range',
    'check_label_maps'
]


def is_segmentation_batch(data_samples: Sequence) -> bool:
    """Whether the samples carry pixel labels (``gt_sem_seg``)."""
    return len(data_samples) > 0 and hasattr(data_samples[0], 'gt_sem_seg')


def check_label_range(labels: torch.Tensor, num_classes: int, what: str,
                      valid: Optional[torch.Tensor] = None) -> None:
    """Raise a clear error for labels outside ``[0, num_classes)``.

    One host read of (min, max): a single synchronization on an accelerator.

    Args:
        labels: Integer labels of any shape.
        num_classes: The number of classes.
        what: What the labels are, for the message ('image', 'pixel').
        valid: Where the labels count (e.g. not ``ignore_index``), the shape of ``labels``;
            all of them when None. Defaults to None.
    """
    if labels.numel() == 0:
        return
    if valid is None:
        extremes = torch.stack(torch.aminmax(labels))
    else:
        # The others are filled with in-range labels, which cannot raise an error.
        extremes = torch.stack([torch.where(valid, labels, num_classes - 1).min(),
                                torch.where(valid, labels, 0).max()])
    low, high = (int(v) for v in extremes.tolist())
    if low < 0 or high >= num_classes:
        if valid is not None:  # the exact extremes for the message
            low, high = (int(v) for v in torch.stack(torch.aminmax(labels[valid])).tolist())
        raise ValueError(
            f'{what} labels must be in [0, {num_classes}), got values from {low} to {high}; '
            'check num_classes of the model and the dataset')


def check_label_maps(data_samples: Sequence, num_classes: int, ignore_index: int = 255) -> None:
    """Raise naming the file and the value when a label map holds a value that is no class.

    Values in ``[0, num_classes)`` and ``ignore_index`` are labels; any other value (a class
    index beyond the config's classes, a palette colour, an unreduced 0 of
    ``reduce_zero_label``) is an error. One host read for the whole batch; the files are only
    looked at when it finds a bad value.

    Args:
        data_samples: Segmentation data samples (``gt_sem_seg``), with ``seg_map_path`` in
            their meta information when they come from files.
        num_classes: The number of classes.
        ignore_index: The label of ignored pixels. Defaults to 255.

    Raises:
        ValueError: For the first sample with a bad value, naming its file and the value.
    """
    if not is_segmentation_batch(data_samples):
        return
    maps = [s.gt_sem_seg.data for s in data_samples]
    flags = torch.stack([((m != ignore_index) & ((m < 0) | (m >= num_classes))).any()
                         for m in maps])
    if not bool(flags.any()):
        return
    index = int(torch.nonzero(flags)[0])
    values = maps[index]
    bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
    found = sorted(int(v) for v in bad.unique()[:5].tolist())
    source = data_samples[index].metainfo.get('seg_map_path') or f'sample {index} of the batch'
    raise ValueError(
        f'label map {source} holds the value {found[0]} (values found beyond the classes: '
        f'{found}), which is neither a class index in [0, {num_classes}) nor the ignore index '
        f'{ignore_index}; check the classes of the config (num_classes of the heads), '
        'reduce_zero_label and that the maps hold class indices, not colours')


def _pixel_maps(data_samples: Sequence) -> torch.Tensor:
    return torch.stack([s.gt_sem_seg.data.reshape(s.gt_sem_seg.data.shape[-2:])
                        for s in data_samples]).long()


def image_labels(data_samples: Sequence, num_classes: int,
                 ignore_index: int = 255) -> torch.Tensor:
    """One class per image: its label (classification) or its largest labelled class.

    For segmentation, the class covering most of the image's pixels other than
    ``ignore_index``; an image with no labelled pixel gets -1.

    Returns:
        Tensor: (B,) long labels.
    """
    if not is_segmentation_batch(data_samples):
        labels = torch.stack([s.gt_label.reshape(-1)[0] for s in data_samples]).long()
        check_label_range(labels, num_classes, 'image')
        return labels
    maps = _pixel_maps(data_samples).flatten(1)
    valid = maps != ignore_index
    check_label_range(maps, num_classes, 'pixel', valid)
    batch = maps.shape[0]
    keys = (torch.arange(batch, device=maps.device)[:, None] * num_classes
            + maps.clamp(0, num_classes - 1))
    counts = _count(keys, valid, batch * num_classes).view(batch, num_classes)
    labels = counts.argmax(dim=1)
    return torch.where(counts.sum(dim=1) > 0, labels, -1)


def _count(keys: torch.Tensor, weights: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of ``size`` keys occurs where ``weights`` is set (a bincount of fixed
    size, which needs no host read of the largest key)."""
    counts = torch.zeros(size, dtype=torch.long, device=keys.device)
    return counts.index_add_(0, keys.flatten(), weights.flatten().long())


def patch_labels(data_samples: Sequence, patch_resolution: Tuple[int, int], num_classes: int,
                 ignore_index: int = 255, image_level: Optional[torch.Tensor] = None,
                 check: bool = True) -> torch.Tensor:
    """One class per patch, (B, N) long, -1 for dropped patches.

    Classification: every patch takes its image's class (``image_level`` if given).
    Segmentation: the class covering most of the patch's pixels; a patch whose pixels are
    mostly ``ignore_index`` is dropped (-1). Label maps are resized (nearest) to a multiple of
    the patch grid when their size differs from it.

    ``check=False`` skips the range check of the pixel labels (one host read), for a caller
    that has checked the same samples already (e.g. with :func:`image_labels`).
    """
    h, w = patch_resolution
    if not is_segmentation_batch(data_samples):
        labels = image_level if image_level is not None else image_labels(data_samples,
                                                                          num_classes)
        return labels[:, None].expand(-1, h * w)
    maps = _pixel_maps(data_samples)
    batch, height, width = maps.shape
    if height % h or width % w:
        maps = F.interpolate(maps[:, None].float(), size=(h * max(height // h, 1),
                                                          w * max(width // w, 1)),
                             mode='nearest')[:, 0].long()
        height, width = maps.shape[-2:]
    ph, pw = height // h, width // w
    valid = maps != ignore_index
    if check:
        check_label_range(maps, num_classes, 'pixel', valid)
    # Histogram over (image, patch, class + ignore bin) in one count.
    bins = num_classes + 1
    cls = torch.where(valid, maps, torch.full_like(maps, num_classes))
    rows = torch.arange(height, device=maps.device) // ph
    cols = torch.arange(width, device=maps.device) // pw
    patch = (rows[:, None] * w + cols[None, :]).expand(batch, -1, -1)
    image = torch.arange(batch, device=maps.device)[:, None, None]
    keys = (image * (h * w) + patch) * bins + cls
    counts = _count(keys, torch.ones_like(keys), batch * h * w * bins)
    labels = counts.view(batch, h * w, bins).argmax(dim=-1)
    return torch.where(labels == num_classes, -1, labels)
