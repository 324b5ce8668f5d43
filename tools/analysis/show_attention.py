"""Draw the attention maps of one image through a trained DA-VPT model.

The model is built from CONFIG and loaded strictly from CHECKPOINT (full, trainable-only or
exported) by :func:`mmda_vpt.apis.load_model`; :func:`mmda_vpt.apis.attention_maps` records the
attention of the CLS token and of the prompts over the patches. The picture is the one
``PromptVisualizationHook`` sends to TensorBoard during training: the input, then for every layer
the CLS token's map and the maps of the first ``--prompts`` prompts, each over the input.

Examples::

    python tools/analysis/show_attention.py CONFIG CHECKPOINT demo.jpg attention.png
    python tools/analysis/show_attention.py CONFIG CHECKPOINT demo.jpg attention.png \\
        --layers 0 -1 --prompts 6
"""
import argparse
from typing import List, Optional

from mmengine.config import DictAction
from mmengine.logging import print_log

import mmda_vpt  # noqa: F401  (compatibility fixes and registration)
from mmda_vpt.apis import attention_maps, draw_attention_maps, load_model


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


def main(argv: Optional[List[str]] = None) -> None:
    """Draws the attention maps named on the command line.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    model = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
    captured = attention_maps(model, args.image, args.layers)
    draw_attention_maps(captured, args.out, args.prompts)
    print_log(f'attention maps of layers {captured["layers"].tolist()} written to {args.out}',
              logger='current')


if __name__ == '__main__':
    main()
