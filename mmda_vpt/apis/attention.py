"""Attention maps of one image through a trained DA-VPT model, and their figure.

The image goes through the config's test pipeline and the model's data preprocessor; the
backbone's ``record_attention`` gives, per chosen layer, the attention of the CLS token and of
the prompts over the patches (mean over heads).
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

from mmda_vpt.utils.model_access import get_davpt_backbone
from .runner import library_of

__all__ = ['attention_maps', 'draw_attention_maps']


def _pipeline(cfg: Config) -> Compose:
    """The test pipeline of the config, without the annotation loading."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    steps = [dict(step) for step in dataset['pipeline'] if step['type'] != 'LoadAnnotations']
    with DefaultScope.overwrite_default_scope(library_of(cfg)):
        return Compose(steps)


def attention_maps(model: nn.Module, image: str, layers: Optional[Sequence[int]] = None,
                   cfg: Optional[Config] = None) -> Dict[str, np.ndarray]:
    """The attention maps of ``image`` through ``model``.

    Args:
        model (nn.Module): A classifier or segmentor with a DA-VPT backbone, such as
            :func:`~mmda_vpt.apis.load_model` returns.
        image (str): The image file.
        layers (Sequence[int], optional): 0-based layers, negative from the end. Defaults to
            None: the guided layers, or the last layer.
        cfg (Config, optional): The config whose test pipeline reads the image. Defaults to
            None: ``model.cfg``.

    Returns:
        dict: ``image`` (H, W, 3) uint8 RGB input as the model saw it (padded), ``layers``
        (L,), ``prefix`` (1 with a CLS token, else 0) and ``maps_<layer>`` (prefix + M, h, w):
        the CLS token's row, then every prompt's, over the patches (mean over heads).

    Raises:
        ValueError: If no config is given and the model has none.
    """
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('attention_maps needs the config of the model: pass cfg=, or load '
                         'the model with mmda_vpt.apis.load_model (it sets model.cfg)')
    backbone = get_davpt_backbone(model, 'attention_maps')
    num_layers = len(backbone.layers)
    if layers is None:
        layers = backbone.guided_layers or (num_layers - 1, )
    layers = [layer % num_layers if -num_layers <= layer < num_layers else layer
              for layer in layers]
    batch = pseudo_collate([_pipeline(cfg)(dict(img_path=image))])
    inputs = model.data_preprocessor(batch, False)['inputs']
    with torch.no_grad(), backbone.record_attention(layers) as maps:
        backbone(inputs)
        _, grid = backbone.patch_embed(inputs)  # the patch grid, padding included
    stride = backbone.patch_embed.projection.stride
    raw = batch['inputs'][0].cpu().numpy().transpose(1, 2, 0)
    pre = model.data_preprocessor
    if getattr(pre, '_channel_conversion', getattr(pre, 'channel_conversion', False)):
        raw = raw[..., ::-1]
    shown = np.zeros((grid[0] * stride[0], grid[1] * stride[1], 3), dtype=np.uint8)
    height, width = min(raw.shape[0], shown.shape[0]), min(raw.shape[1], shown.shape[1])
    shown[:height, :width] = raw[:height, :width]
    out = dict(image=shown, layers=np.array(layers), prefix=np.array(backbone.num_prefix_tokens))
    patches = grid[0] * grid[1]
    for layer in layers:
        attn = maps[layer][0].float().mean(dim=0)[:, -patches:]  # (1 + M, N)
        out[f'maps_{layer}'] = attn.reshape(attn.shape[0], *grid).cpu().numpy()
    return out


def draw_attention_maps(captured: Dict[str, np.ndarray], out: str, prompts: int = 4) -> None:
    """Write the figure of what :func:`attention_maps` returned to ``out`` (PNG).

    One row per layer: the input, the CLS token's map, then the maps of the first ``prompts``
    prompts, each over the input.

    Args:
        captured (dict): What :func:`attention_maps` returned.
        out (str): The PNG file.
        prompts (int): Prompts drawn per layer (the first ones). Defaults to 4.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    image = captured['image']
    layers = [int(v) for v in captured['layers']]
    prefix = int(captured['prefix'])
    counts = [prefix + min(prompts, captured[f'maps_{layer}'].shape[0] - prefix)
              for layer in layers]
    columns = 1 + max(counts)
    fig, axes = plt.subplots(len(layers), columns, figsize=(2.2 * columns, 2.4 * len(layers)),
                             squeeze=False)
    height, width = image.shape[:2]
    for row, (layer, count) in enumerate(zip(layers, counts)):
        maps = captured[f'maps_{layer}']
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f'layer {layer}')
        for col in range(1, columns):
            ax = axes[row, col]
            if col > count:
                ax.axis('off')
                continue
            ax.imshow(image)
            ax.imshow(maps[col - 1], cmap='jet', alpha=0.5, extent=(0, width, height, 0),
                      interpolation='nearest')
            ax.set_title('CLS' if col <= prefix else f'prompt {col - 1 - prefix}')
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
