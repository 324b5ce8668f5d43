"""Command lines of ``tools/train.py`` and ``tools/test.py``, and the arguments they share."""
import argparse

from mmengine.config import DictAction

__all__ = ['add_common_args', 'build_test_parser', 'build_train_parser']


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Adds the arguments train.py and test.py share: config options, launcher, local rank.

    Args:
        parser (argparse.ArgumentParser): The parser to extend.
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged into it '
        '(lists as key="[a,b]" or key=a,b; nested lists/tuples as key="[(a,b),(c,d)]"; '
        'quotes are needed and no white space is allowed)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (tools/dist_train.sh uses pytorch)')
    # torch.distributed.launch passes --local-rank (PyTorch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _parser(description: str, work_dir: str, **positionals: str) -> argparse.ArgumentParser:
    """A parser with the positional arguments ``positionals`` (name: help) and ``--work-dir``."""
    parser = argparse.ArgumentParser(description=description)
    for name, help_text in positionals.items():
        parser.add_argument(name, help=help_text)
    parser.add_argument('--work-dir', help=work_dir)
    return parser


def build_train_parser() -> argparse.ArgumentParser:
    """The command line of ``tools/train.py``, for :func:`~mmda_vpt.apis.merge_train_args`.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = _parser('Train a model of mmda_vpt, mmpretrain or mmsegmentation',
                     config='train config file path',
                     work_dir='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or without a path from the latest checkpoint '
        'in the work directory')
    switches = {
        '--amp': 'enable automatic-mixed-precision training',
        '--no-validate': 'do not evaluate during training',
        '--auto-scale-lr': 'scale the learning rate by the actual batch size against '
        'auto_scale_lr.base_batch_size of the config',
        '--no-pin-memory': 'disable pin_memory in the dataloaders',
        '--no-persistent-workers': 'disable persistent_workers in the dataloaders',
    }
    for flag, help_text in switches.items():
        parser.add_argument(flag, action='store_true', help=help_text)
    add_common_args(parser)
    return parser


def build_test_parser() -> argparse.ArgumentParser:
    """The command line of ``tools/test.py``, for :func:`~mmda_vpt.apis.merge_test_args`.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = _parser('Test a checkpoint of mmda_vpt, mmpretrain or mmsegmentation',
                     config='test config file path', checkpoint='checkpoint file',
                     work_dir='the directory to save the file with the evaluation metrics')
    parser.add_argument(
        '--out',
        help='mmpretrain: the file to dump the predictions (or, with --out-item metrics, the '
        'metrics) to; mmseg: the directory to save the predicted maps to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='mmpretrain only: what --out holds (needs --out). Defaults to predictions.')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--tta', action='store_true',
        help="test with the config's tta_model and tta_pipeline (mmseg's multi-scale mIoU-MS)")
    add_common_args(parser)
    return parser
