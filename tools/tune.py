"""Search hyperparameters of any config on its validation split, with Optuna.

The command line of :mod:`mmda_vpt.tune` (see its documentation for the search, its work
directory and the keys of ``--space``); from Python call ``mmda_vpt.tune.run_search``.

Examples::

    python tools/tune.py CONFIG --space lr=1e-4:1e-2:log weight_decay=0,1e-4,1e-3 --trials 20
    python tools/tune.py CONFIG --preset davpt --pruner halving
    python tools/tune.py CONFIG --space lr=1e-3,1e-2 --train-seeds 0 1 2   # mean of 3 seeds
    python tools/tune.py CONFIG --preset vpt-prompt --gpus 0,1,2,3
    python tools/tune.py VTAB_CONFIG --preset davpt \\
        --val-cfg-options train_dataloader.dataset.split=train800
"""
import argparse
import sys
from typing import List, Optional

from mmengine.config import DictAction

from mmda_vpt.tune import (DEFAULT_SAMPLED_TRIALS, PRESETS, PRUNERS, SAMPLERS, SHORT_NAMES,
                           run_search)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of tune.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Search hyperparameters of a config on its validation split (Optuna)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='short names: ' + ', '.join(f'{k} ({v})' for k, v in SHORT_NAMES.items()))
    parser.add_argument('config', help='the config file')
    parser.add_argument('--space', nargs='+', default=[], metavar='KEY=VALUES',
                        help='searched keys: a short name or config path (KEY1+KEY2 ties '
                        'them), = a list a,b,c (grid) or a range low:high[:log|:step]')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help="vpt-prompt / vpt-linear: VPT's lr x weight-decay grids with SGD "
                        "(momentum 0.9, lr x batch/256); davpt: the authors' AdamW lr, weight "
                        'decay and beta=lambda ranges')
    parser.add_argument('--work-dir', help='the search folder (default work_dirs/tune/<config>)')
    parser.add_argument('--trials', type=int,
                        help=f'trials to finish (default: the grid, or '
                        f'{DEFAULT_SAMPLED_TRIALS} when sampling)')
    parser.add_argument('--metric', help="validation metric (default: the evaluator's first)")
    parser.add_argument('--direction', choices=['maximize', 'minimize'], default='maximize')
    parser.add_argument('--sampler', choices=SAMPLERS, default='auto',
                        help='auto: grid when every key has a list, else TPE')
    parser.add_argument('--pruner', choices=PRUNERS, default='none',
                        help='stop bad trials on the metric of each validation')
    parser.add_argument('--pruner-options', nargs='+', action=DictAction, default={},
                        help='arguments of the Optuna pruner, e.g. n_startup_trials=4 '
                        '(median), min_resource=1 reduction_factor=3 (halving)')
    parser.add_argument('--storage', help='Optuna storage URL (default sqlite:///WORK_DIR/'
                        'study.db; journal:PATH for a journal file on shared storage)')
    parser.add_argument('--study-name', help='default: the config name')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config options of every trial, kept in best.py')
    parser.add_argument('--val-cfg-options', nargs='+', action=DictAction, default={},
                        help='config options that carve the validation split (every trial; '
                        'not in best.py), e.g. train_dataloader.dataset.split=train800')
    parser.add_argument('--gpus', help='comma-separated GPU ids: one worker per GPU')
    parser.add_argument('--seed', type=int, default=0, help='sampler seed (default 0)')
    parser.add_argument('--train-seeds', type=int, nargs='+', metavar='SEED',
                        help='train every trial once per seed and score it by the mean '
                        '(the pruner sees the first seed\'s run); default: once, with the '
                        'config\'s seed')
    parser.add_argument('--keep-checkpoints', action='store_true',
                        help="keep the config's checkpoints in the trials")
    parser.add_argument('--heartbeat', type=int, default=60,
                        help='heartbeat interval (s) of running trials in an RDB storage; 0 '
                        'turns heartbeats off')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Runs a search from the command line; prints the table.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        int: The exit status (2 on bad input).
    """
    args = parse_args(argv)
    try:
        result = run_search(
            args.config, args.space, preset=args.preset, work_dir=args.work_dir,
            trials=args.trials, metric=args.metric, direction=args.direction,
            sampler=args.sampler, pruner=args.pruner, pruner_options=args.pruner_options,
            storage=args.storage, study_name=args.study_name, cfg_options=args.cfg_options,
            val_cfg_options=args.val_cfg_options,
            gpus=args.gpus.split(',') if args.gpus else None, seed=args.seed,
            keep_checkpoints=args.keep_checkpoints, heartbeat=args.heartbeat or None,
            train_seeds=args.train_seeds)
    except ValueError as e:
        print(f'tune.py: error: {e}', file=sys.stderr)
        return 2
    with open(result.files['table_md']) as f:
        print(f.read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
