"""The entry point of a worker process of a search: ``python -m mmda_vpt.tune._worker``."""
import argparse
from typing import List, Optional

from mmda_vpt.tune.workers import run_worker


def main(argv: Optional[List[str]] = None) -> None:
    """Runs the trials of the pickled search given on the command line.

    Args:
        argv (list[str], optional): ``SPEC_FILE [--index I]``; the process's when None.
            Defaults to None.
    """
    parser = argparse.ArgumentParser(description='a worker process of mmda_vpt.tune')
    parser.add_argument('spec_file', help='the pickled search (search_spec.pkl)')
    parser.add_argument('--index', type=int, default=0, help="the worker's index")
    args = parser.parse_args(argv)
    run_worker(args.spec_file, args.index)


if __name__ == '__main__':
    main()
