"""Attention maps of one image through a trained DA-VPT model, and their figure.

The image goes through the config's test pipeline and
:func:`~mmda_vpt.visualization.capture_attention` (the model's data preprocessor, the backbone's
``record_attention``): per chosen layer, the attention of the CLS token and of the prompts over
the patches (mean over heads). The figure is :func:`~mmda_vpt.visualization.draw_attention`'s.
"""
from typing import Dict, Optional, Sequence

import numpy as np
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

from mmda_vpt.visualization import AttentionRow, capture_attention, draw_attention, save_image
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
        ValueError: If no config is given and the model has none, or a layer is out of range.
    """
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('attention_maps needs the config of the model: pass cfg=, or load '
                         'the model with mmda_vpt.apis.load_model (it sets model.cfg)')
    batch = pseudo_collate([_pipeline(cfg)(dict(img_path=image))])
    captured = capture_attention(model, batch, layers)
    out = dict(image=captured['images'][0], layers=np.array(captured['layers']),
               prefix=np.array(captured['prefix']))
    for layer in captured['layers']:
        out[f'maps_{layer}'] = captured['maps'][layer][0]
    return out


def draw_attention_maps(captured: Dict[str, np.ndarray], out: str,
                        prompts: Optional[int] = 4) -> None:
    """Write the figure of what :func:`attention_maps` returned to ``out`` (PNG).

    The picture of :func:`~mmda_vpt.visualization.draw_attention` (the one
    ``PromptVisualizationHook`` sends to the visualizer): the input, then for every layer the
    CLS token's map and the maps of the first ``prompts`` prompts, each over the input.

    Args:
        captured (dict): What :func:`attention_maps` returned.
        out (str): The PNG file.
        prompts (int, optional): Prompts drawn per layer (the first ones). Defaults to 4; None
            for all.
    """
    layers = [int(v) for v in captured['layers']]
    row = AttentionRow(image=captured['image'],
                       maps={layer: captured[f'maps_{layer}'] for layer in layers},
                       prefix=int(captured['prefix']))
    save_image(draw_attention([row], prompts=prompts), out)
