"""Draw the attention maps of one image through a trained DA-VPT model.

The model is built from CONFIG and loaded from CHECKPOINT (full, trainable-only or exported) by
the host library's stock loader (mmpretrain's ``get_model``, mmseg's ``init_model``); the image
goes through the config's test pipeline and data preprocessor; the backbone's
``record_attention`` gives, per chosen layer, the attention of the CLS token and of the prompts
over the patches (mean over heads). One row per layer: the input, the CLS token's map, then the
maps of the first ``--prompts`` prompts, each over the input.

Examples::

    python tools/analysis/show_attention.py CONFIG CHECKPOINT demo.jpg attention.png
    python tools/analysis/show_attention.py CONFIG CHECKPOINT demo.jpg attention.png \\
        --layers 0 -1 --prompts 6
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmda_vpt.apis import library_of, register_library  # noqa: E402

from mmda_vpt.utils.model_access import get_davpt_backbone  # noqa: E402

__all__ = ['attention_maps', 'draw', 'main', 'parse_args']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of show_attention.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Draw the CLS and prompt attention maps of '
                                     'one image through a DA-VPT model')
    parser.add_argument('config', help='the config of the model')
    parser.add_argument('checkpoint', help='a full, trainable-only or exported checkpoint')
    parser.add_argument('image', help='the image file')
    parser.add_argument('out', help='the PNG file to write')
    parser.add_argument('--layers', type=int, nargs='+', default=None,
                        help='0-based layers (negative from the end). Defaults to the guided '
                        'layers, or the last layer')
    parser.add_argument('--prompts', type=int, default=4,
                        help='prompts drawn per layer (the first ones). Defaults to 4')
    parser.add_argument('--device', default='cpu', help='the device. Defaults to cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as key=value pairs')
    return parser.parse_args(argv)


def _load_model(cfg: Config, checkpoint: str, device: str) -> torch.nn.Module:
    """The model through its library's stock loader."""
    if library_of(cfg) == 'mmseg':
        from mmseg.apis import init_model
        return init_model(cfg, checkpoint, device=device)
    from mmpretrain.apis import get_model
    return get_model(cfg, pretrained=checkpoint, device=device)


def _pipeline(cfg: Config) -> Compose:
    """The test pipeline of the config, without the annotation loading."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    steps = [dict(step) for step in dataset['pipeline'] if step['type'] != 'LoadAnnotations']
    with DefaultScope.overwrite_default_scope(library_of(cfg)):
        return Compose(steps)


def attention_maps(config: str, checkpoint: str, image: str,
                   layers: Optional[Sequence[int]] = None, device: str = 'cpu',
                   cfg_options: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """The attention maps of ``image`` through the model of ``config`` and ``checkpoint``.

    Args:
        config (str): The config file.
        checkpoint (str): The checkpoint file.
        image (str): The image file.
        layers (Sequence[int], optional): 0-based layers, negative from the end. Defaults to
            None: the guided layers, or the last layer.
        device (str): The device. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        dict: ``image`` (H, W, 3) uint8 RGB input as the model saw it (padded), ``layers``
        (L,), ``prefix`` (1 with a CLS token, else 0) and ``maps_<layer>`` (prefix + M, h, w):
        the CLS token's row, then every prompt's, over the patches (mean over heads).
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_library(cfg)
    model = _load_model(cfg, checkpoint, device).eval()
    backbone = get_davpt_backbone(model, 'show_attention.py')
    num_layers = len(backbone.layers)
    if layers is None:
        layers = backbone.guided_layers or (num_layers - 1, )
    layers = [layer % num_layers if -num_layers <= layer < num_layers else layer
              for layer in layers]
    batch = pseudo_collate([_pipeline(cfg)(dict(img_path=image))])
    data = model.data_preprocessor(batch, False)
    inputs = data['inputs']
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


def draw(out: str, captured: Dict[str, np.ndarray], prompts: int = 4) -> None:
    """Write the figure of what :func:`attention_maps` returned to ``out`` (PNG).

    Args:
        out (str): The PNG file.
        captured (dict): What :func:`attention_maps` returned.
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


def main(argv: Optional[List[str]] = None) -> None:
    """Draws the attention maps named on the command line.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    captured = attention_maps(args.config, args.checkpoint, args.image, args.layers,
                              args.device, args.cfg_options)
    draw(args.out, captured, args.prompts)
    print_log(f'attention maps of layers {captured["layers"].tolist()} written to {args.out}',
              logger='current')


if __name__ == '__main__':
    main()
