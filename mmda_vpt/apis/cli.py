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


def build_train_parser() -> argparse.ArgumentParser:
    """The command line of ``tools/train.py``, for :func:`~mmda_vpt.apis.merge_train_args`.

    Returns:
        argparse.ArgumentParser: The parser.
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
    return parser


def build_test_parser() -> argparse.ArgumentParser:
    """The command line of ``tools/test.py``, for :func:`~mmda_vpt.apis.merge_test_args`.

    Returns:
        argparse.ArgumentParser: The parser.
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
        help='mmpretrain only: what --out holds (needs --out). Defaults to predictions.')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision test')
    parser.add_argument(
        '--tta', action='store_true',
        help="test with the config's tta_model and tta_pipeline (mmseg's multi-scale mIoU-MS)")
    add_common_args(parser)
    return parser
