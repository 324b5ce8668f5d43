"""Export one self-contained checkpoint: base and trained weights, no optimizer state.

The exported file loads strictly into a model built from CONFIG with no ``init_cfg`` and no
other file; it is checked to predict what CHECKPOINT predicts before it is written (see
:mod:`mmda_vpt.apis.export`).

Examples::

    python tools/export_checkpoint.py CONFIG work_dirs/xxx/epoch_100.pth exported.pth
    python tools/export_checkpoint.py SEG_CONFIG work_dirs/xxx/iter_80000.pth exported.pth
"""
import argparse
from typing import List, Optional

from mmengine.config import DictAction

import mmda_vpt  # noqa: F401  (compatibility fixes and registration)
from mmda_vpt.apis import export_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of export_checkpoint.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Export a self-contained checkpoint (base + trained weights, no optimizer)')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a full or trainable-only checkpoint')
    parser.add_argument('out', help='the file to write')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs merged into it')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Exports the checkpoint named on the command line.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    export_checkpoint(args.config, args.checkpoint, args.out, args.cfg_options)


if __name__ == '__main__':
    main()
