"""Build and run a runner from a config the way the stock tools of its library do."""
import argparse
import importlib
import logging
import os.path as osp
from copy import deepcopy
from typing import Dict, Optional

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.logging import print_log
from mmengine.registry import Registry
from mmengine.runner import Runner

from mmda_vpt.checkpoints.trainable_state import log_trainable_params

__all__ = [
    'SUPPORTED_SCOPES', 'build_runner', 'enable_amp', 'library_of', 'merge_test_args',
    'merge_train_args', 'register_library', 'run_test', 'run_train', 'set_work_dir'
]

# default_scope -> the package that runs configs of that scope.
SUPPORTED_SCOPES: Dict[str, str] = {'mmpretrain': 'mmpretrain', 'mmseg': 'mmseg'}

# What each library's stock tools/train.py sets on every dataloader unless the config says
# otherwise (mmsegmentation's sets nothing).
_DATALOADER_DEFAULTS: Dict[str, dict] = {
    'mmpretrain':
    dict(pin_memory=True, persistent_workers=True, collate_fn=dict(type='default_collate')),
    'mmseg': dict(),
}


def library_of(cfg: Config) -> str:
    """The library that runs ``cfg``, from its ``default_scope``.

    Args:
        cfg (Config): A loaded config.

    Returns:
        str: ``'mmpretrain'`` or ``'mmseg'``.

    Raises:
        ValueError: If the config's ``default_scope`` is missing or not supported.
    """
    scope = cfg.get('default_scope', None)
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(
            f'{cfg.filename}: default_scope is {scope!r}; these tools run configs whose '
            f'default_scope is one of {sorted(SUPPORTED_SCOPES)} (inherit '
            "'mmpretrain::_base_/default_runtime.py' or 'mmseg::_base_/default_runtime.py', "
            'or set default_scope).')
    return scope


def register_library(cfg: Config) -> Registry:
    """Registers every module of the library that runs ``cfg``.

    The default scope itself is set by the runner from ``cfg.default_scope``.

    Args:
        cfg (Config): A loaded config.

    Returns:
        Registry: The library's ``RUNNERS`` registry (for configs with ``runner_type``).
    """
    package = SUPPORTED_SCOPES[library_of(cfg)]
    importlib.import_module(f'{package}.utils').register_all_modules(init_default_scope=False)
    return importlib.import_module(f'{package}.registry').RUNNERS


def build_runner(cfg: Config) -> Runner:
    """Builds the runner of ``cfg`` like the stock tools: ``Runner.from_cfg`` or ``runner_type``.

    Args:
        cfg (Config): The merged config.

    Returns:
        Runner: The runner.
    """
    runners = register_library(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return runners.build(cfg)


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


def enable_amp(cfg: Config) -> None:
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


def merge_train_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merges the options of ``tools/train.py`` into the config (``--cfg-options`` last).

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
        enable_amp(cfg)

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


def merge_test_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merges the options of ``tools/test.py`` into the config (``--cfg-options`` last).

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): The parsed arguments
            (:func:`~mmda_vpt.apis.cli.build_test_parser`).

    Returns:
        Config: The same config, updated.

    Raises:
        ValueError: If ``--out-item`` is given without ``--out`` or with an mmseg config, or
            ``--tta`` with a config that defines no ``tta_model`` / ``tta_pipeline``.
    """
    library = library_of(cfg)
    if args.out_item is not None and args.out is None:
        raise ValueError('--out-item needs --out (the file to write to)')
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


def run_train(cfg: Config) -> Runner:
    """Trains the model of a merged config and logs its trainable parameter count.

    Args:
        cfg (Config): The config, merged (:func:`merge_train_args`).

    Returns:
        Runner: The runner, after training.
    """
    runner = build_runner(cfg)
    log_trainable_params(runner.model)  # the paper's #Param column, for every method
    runner.train()
    return runner


def run_test(cfg: Config, out: Optional[str] = None, out_item: Optional[str] = None) -> dict:
    """Tests the checkpoint of a merged config (``cfg.load_from``) and returns the metrics.

    Args:
        cfg (Config): The config, merged (:func:`merge_test_args`).
        out (str, optional): mmpretrain: the file to dump the predictions (or, with
            ``out_item='metrics'``, the metrics) to; mmseg configs take it in
            :func:`merge_test_args`. Defaults to None.
        out_item (str, optional): ``'metrics'`` or ``'pred'``. Defaults to None
            (predictions).

    Returns:
        dict: The metrics of the test loop.
    """
    runner = build_runner(cfg)
    pretrain = library_of(cfg) == 'mmpretrain'
    dump_metrics = pretrain and out_item == 'metrics'
    if pretrain and out is not None and not dump_metrics:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    metrics = runner.test()
    if dump_metrics and is_main_process():
        mmengine.dump(metrics, out)
    return metrics
