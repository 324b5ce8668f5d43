"""The attention of the CLS token and of the prompts over the patches, for a batch of images."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from mmda_vpt.models.backbones.layer_indices import resolve_layer_indices
from mmda_vpt.utils.model_access import get_davpt_backbone, unwrap_model

__all__ = ['capture_attention', 'resolve_layers']


def resolve_layers(backbone: nn.Module, layers: Optional[Sequence[int]] = None) -> list:
    """0-based layers of ``backbone``: ``layers`` (negative from the end), else the guided
    layers, else the last layer.

    Args:
        backbone (nn.Module): A DA-VPT backbone.
        layers (Sequence[int], optional): The layers asked for. Defaults to None.

    Returns:
        list[int]: The layers, 0-based.

    Raises:
        ValueError: If a layer is out of range.
    """
    num_layers = len(backbone.layers)
    if layers is None:
        layers = backbone.guided_layers or (num_layers - 1, )
    return resolve_layer_indices(layers, num_layers, 'attention layer')


def _shown_images(batch: dict, preprocessor: nn.Module, grid: Sequence[int],
                  stride: Sequence[int]) -> list:
    """The images as the model saw them, cut or padded to the area the patch grid covers: grey
    for one channel; three channels flipped when the preprocessor converts them (the loader's
    BGR to RGB), else shown in the order the model takes them."""
    convert = getattr(preprocessor, '_channel_conversion',
                      getattr(preprocessor, 'channel_conversion', False))
    height, width = grid[0] * stride[0], grid[1] * stride[1]
    shown = []
    for tensor in batch['inputs']:
        raw = tensor.detach().cpu().numpy().transpose(1, 2, 0)
        if raw.shape[2] == 3 and convert:
            raw = raw[..., ::-1]
        raw = np.clip(raw, 0, 255).astype(np.uint8)
        image = np.zeros((height, width, raw.shape[2]), dtype=np.uint8)
        h, w = min(raw.shape[0], height), min(raw.shape[1], width)
        image[:h, :w] = raw[:h, :w]
        shown.append(image[..., 0] if image.shape[2] == 1 else image)
    return shown


def capture_attention(model: nn.Module, batch: dict,
                      layers: Optional[Sequence[int]] = None) -> Dict[str, object]:
    """Run ``batch`` through ``model`` in eval mode and record the attention maps.

    The model is unwrapped first (never a forward through a DDP wrapper) and put back in the
    mode it was in; nothing is trained and no random number is drawn.

    Args:
        model (nn.Module): A classifier or segmentor with a DA-VPT backbone.
        batch (dict): Collated pipeline outputs (``pseudo_collate``): ``inputs``, a list of
            (C, H, W) images of one size, and ``data_samples``.
        layers (Sequence[int], optional): 0-based layers, negative from the end. Defaults to
            None: the guided layers, or the last layer.

    Returns:
        dict: ``images`` (list of (H, W, 3) uint8, RGB when the preprocessor converts the
        loader's BGR, or (H, W) for one channel, as the model saw them, cut or padded to the
        patch grid), ``layers`` (list of int), ``prefix`` (1
        with a CLS token, else 0), ``maps`` ({layer: (B, prefix + M, h, w) float32 array}: the
        CLS token's row, then every prompt's, over the patches, mean over heads) and ``preds``
        ((B,) predicted classes of a classifier; None for a segmentor).
    """
    inner = unwrap_model(model)
    backbone = get_davpt_backbone(inner, 'capture_attention')
    layers = resolve_layers(backbone, layers)
    classifier = hasattr(inner, 'head') and not hasattr(inner, 'decode_head')
    was_training = inner.training
    inner.eval()
    preds = None
    try:
        inputs = inner.data_preprocessor(batch, False)['inputs']
        with torch.no_grad(), backbone.record_attention(layers) as recorded:
            if classifier:
                logits = inner(inputs, mode='tensor')
                preds = logits.argmax(-1).cpu().numpy()
            else:
                backbone(inputs)
            _, grid = backbone.patch_embed(inputs)  # the patch grid, padding included
    finally:
        inner.train(was_training)
    patches = grid[0] * grid[1]
    maps = {}
    for layer in layers:
        attn = recorded[layer].float().mean(dim=1)[:, :, -patches:]  # (B, prefix + M, N)
        maps[layer] = attn.reshape(attn.shape[0], attn.shape[1], *grid).cpu().numpy()
    stride = backbone.patch_embed.projection.stride
    return dict(images=_shown_images(batch, inner.data_preprocessor, grid, stride),
                layers=layers, prefix=int(backbone.num_prefix_tokens), maps=maps, preds=preds)
