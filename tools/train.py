"""Train a model from a config of mmda_vpt, mmpretrain or mmsegmentation.

The library that runs the config is chosen by its ``default_scope`` (``'mmpretrain'`` or
``'mmseg'``); the runner is built the way the stock ``tools/train.py`` of that library builds it
(:mod:`mmda_vpt.apis.runner`). ``import mmda_vpt`` applies :mod:`mmda_vpt.compat` (checkpoint
resume with ``weights_only``, distributed runs without CUDA) and registers the DA-VPT components.

Examples::

    python tools/train.py configs/da_vpt/xxx.py --work-dir work_dirs/xxx
    python tools/train.py configs/da_vpt/xxx.py --resume                 # latest in work_dir
    python tools/train.py configs/da_vpt/xxx.py --resume path/epoch_3.pth
    bash tools/dist_train.sh configs/da_vpt/xxx.py 8                     # torchrun, 8 processes
"""
import argparse
import os
from typing import List, Optional

from mmengine.config import Config

import mmda_vpt  # noqa: F401  (compatibility fixes and registration)
from mmda_vpt.apis import build_train_parser, merge_train_args, run_train


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of train.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    return build_train_parser().parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Trains the model of a config.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    run_train(merge_train_args(Config.fromfile(args.config), args))


if __name__ == '__main__':
    main()
