"""Train a model from a config of mmda_vpt, mmpretrain or mmsegmentation.

The library that runs the config is chosen by its ``default_scope`` (``'mmpretrain'`` or
``'mmseg'``); the runner is built the way the stock ``tools/train.py`` of that library builds it.
``import mmda_vpt`` applies :mod:`mmda_vpt.compat` (checkpoint resume with
``weights_only``, distributed runs without CUDA) and registers the DA-VPT components.

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
from mmda_vpt.apis import build_runner, merge_train_args
from mmda_vpt.apis.cli import add_common_args
from mmda_vpt.checkpoints import log_trainable_params


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of train.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Train a model of mmda_vpt, mmpretrain or mmsegmentation')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or without a path from the latest checkpoint '
        'in the work directory')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate', action='store_true', help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size against '
        'auto_scale_lr.base_batch_size of the config')
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    add_common_args(parser)
    args = parser.parse_args(argv)
    return args


def set_work_dir(cfg: Config, work_dir: Optional[str], config_path: str) -> None:
    """Sets ``cfg.work_dir``: the command line's, else the config's, else from the file name.

    Args:
        cfg (Config): The config to update.
        work_dir (str, optional): ``--work-dir``.
        config_path (str): The config file path.
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def _enable_amp(cfg: Config) -> None:
    """Switches ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` with dynamic loss scaling."""
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log(
            'AMP training is already enabled in the config.',
            logger='current',
            level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type "OptimWrapper" (it becomes '
                         f'"AmpOptimWrapper"), but the config has "{wrapper_type}".')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merges the command line of train.py into the config (``--cfg-options`` last).

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): The parsed arguments.

    Returns:
        Config: The same config, updated.
    """
    library = library_of(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        _enable_amp(cfg)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr', None) is None:
            raise ValueError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                             'in the config.')
        cfg.auto_scale_lr.enable = True

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(field, None) is None:
            continue
        defaults = deepcopy(_DATALOADER_DEFAULTS[library])
        if cfg[field].get('num_workers', 0) == 0:
            # persistent_workers needs worker processes (a DataLoader error otherwise).
            defaults.pop('persistent_workers', None)
        dataloader_cfg = ConfigDict(defaults)
        dataloader_cfg.update(cfg[field])
        if args.no_pin_memory:
            dataloader_cfg.pin_memory = False
        if args.no_persistent_workers:
            dataloader_cfg.persistent_workers = False
        cfg[field] = dataloader_cfg

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Trains the model of a config.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = merge_train_args(Config.fromfile(args.config), args)
    runner = build_runner(cfg)
    log_trainable_params(runner.model)  # the paper's #Param column, for every method
    runner.train()


if __name__ == '__main__':
    main()
