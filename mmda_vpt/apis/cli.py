"""Command-line arguments the tools share (config options, launcher, local rank)."""
import argparse

from mmengine.config import DictAction

__all__ = ['add_common_args']


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
