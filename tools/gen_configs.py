"""Generate the paper's configs under ``configs/da_vpt`` and ``configs/baselines`` from one table.

Every file in those two folders is written by this script, and so are the segmentation tasks'
heads, ``configs/_base_/models/setr-pup_vit-l16_{task}.py``, the ``metafile.yml`` of each config
family and ``model-index.yml``. The tables live in the package, :mod:`mmda_vpt.paper`: tasks,
backbones and methods (``tables.py``), the paper's numbers (``reference.py``) and the authors'
per-task DA-VPT settings (``authors_hyperparameters.csv``, read and gap-filled by
``authors.py``, whose docstring explains the columns). After editing a table, regenerate and
commit the files; ``tests/test_configs/test_configs.py`` fails while the committed files differ
from what this script writes.

Examples::

    python tools/gen_configs.py            # (re)write the configs
    python tools/gen_configs.py --check    # exit 1 and list the files that are not current
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmda_vpt.paper import check, render_all, write_all


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=osp.dirname(osp.dirname(osp.abspath(__file__))),
                        help='repository root (default: the one holding this script)')
    parser.add_argument('--check', action='store_true',
                        help='only report configs that differ from the tables; exit 1 if any')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    total = len(render_all())
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(problem)
        print(f'{total} generated files; {len(problems)} not current')
        return 1 if problems else 0
    changed, removed = write_all(args.root)
    for path in removed:
        print(f'removed {path}')
    print(f'{total} generated files; {changed} written, {len(removed)} removed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
