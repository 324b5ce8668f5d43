"""Test (evaluate) a checkpoint with a config of mmda_vpt, mmpretrain or mmsegmentation.

The library is chosen by the config's ``default_scope`` as in ``tools/train.py``, whose helpers
this script shares.

Examples::

    python tools/test.py configs/da_vpt/xxx.py work_dirs/xxx/epoch_100.pth
    python tools/test.py CONFIG CKPT --out results.pkl                    # mmpretrain predictions
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    python tools/test.py SEG_CONFIG CKPT --out pred_dir                   # mmseg prediction maps
    bash tools/dist_test.sh CONFIG CKPT 8                                 # torchrun, 8 processes
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import mmengine
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from mmda_vpt.apis.cli import add_common_args  # noqa: E402
from mmda_vpt.apis.runner import build_runner, library_of, set_work_dir  # noqa: E402

__all__ = ['main', 'merge_args', 'parse_args']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of test.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.

    Raises:
        SystemExit: If ``--out-item`` is given without ``--out``.
    """
    parser = argparse.ArgumentParser(
        description='Test a checkpoint of mmda_vpt, mmpretrain or mmsegmentation')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file with the evaluation metrics')
    parser.add_argument(
        '--out',
        help='mmpretrain: the file to dump the predictions (or, with --out-item metrics, the '
        'metrics) to; mmseg: the directory to save the predicted maps to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='mmpretrain only: what --out holds. Defaults to predictions.')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--tta', action='store_true',
        help="test with the config's tta_model and tta_pipeline (mmseg's multi-scale mIoU-MS)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.out_item is not None and args.out is None:
        parser.error('--out-item needs --out (the file to write to)')
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merges the command line of test.py into the config (``--cfg-options`` last).

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): The parsed arguments.

    Returns:
        Config: The same config, updated.

    Raises:
        ValueError: If ``--out-item`` is used with an mmseg config.
    """
    library = library_of(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    if args.amp:
        if cfg.get('test_cfg', None) is None:
            cfg.test_cfg = dict()
        cfg.test_cfg.fp16 = True
    if library == 'mmseg' and args.out is not None:
        if args.out_item is not None:
            raise ValueError('--out-item is for mmpretrain configs; with an mmseg config '
                             '--out is the directory for the predicted maps.')
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(f'{cfg.filename} defines no tta_model / tta_pipeline for --tta')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


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
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = build_runner(cfg)
    dump_metrics = library_of(cfg) == 'mmpretrain' and args.out_item == 'metrics'
    if library_of(cfg) == 'mmpretrain' and args.out is not None and not dump_metrics:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if dump_metrics and is_main_process():
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
