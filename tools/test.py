"""Test (evaluate) a checkpoint with a config of mmda_vpt, mmpretrain or mmsegmentation.

The library is chosen by the config's ``default_scope`` as in ``tools/train.py``; both run
over :mod:`mmda_vpt.apis.runner`.

Examples::

    python tools/test.py configs/da_vpt/xxx.py work_dirs/xxx/epoch_100.pth
    python tools/test.py CONFIG CKPT --out results.pkl                    # mmpretrain predictions
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    python tools/test.py SEG_CONFIG CKPT --out pred_dir                   # mmseg prediction maps
    bash tools/dist_test.sh CONFIG CKPT 8                                 # torchrun, 8 processes
"""
import argparse
import os
from typing import List, Optional

from mmengine.config import Config

import mmda_vpt  # noqa: F401  (compatibility fixes and registration)
from mmda_vpt.apis import build_test_parser, merge_test_args, run_test


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of test.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    return build_test_parser().parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Tests a checkpoint and returns the metrics.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        dict: The metrics of the test loop.
    """
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = merge_test_args(Config.fromfile(args.config), args)
    return run_test(cfg, args.out, args.out_item)


if __name__ == '__main__':
    main()
