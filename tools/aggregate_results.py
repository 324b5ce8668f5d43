"""Print the paper's tables of finished runs, with the paper's numbers beside them.

A run is a work directory holding the config mmengine dumps there (``<config name>.py``, one of
the generated configs); its results are the metrics files of ``tools/test.py``. Several runs of
one config (seeds) are averaged. The layout it reads and the tables it prints are described in
:mod:`mmda_vpt.paper.aggregate`.

Example::

    python tools/aggregate_results.py work_dirs
    python tools/aggregate_results.py work_dirs other_dirs --use-val --out results.md
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmda_vpt.paper import collect, format_tables, summarize


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the paper tables of finished runs.')
    parser.add_argument('roots', nargs='*', default=['work_dirs'],
                        help='folders searched (recursively) for runs (default: work_dirs)')
    parser.add_argument('--use-val', action='store_true',
                        help='use the last validation value of runs without test results')
    parser.add_argument('--out', help='also write the tables to this Markdown file')
    args = parser.parse_args(argv)
    missing_roots = [root for root in args.roots if not osp.isdir(root)]
    if missing_roots:
        parser.error(f'not a directory: {", ".join(missing_roots)}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    results = collect(args.roots, use_val=args.use_val)
    if not results:
        print(f'no runs found under {", ".join(args.roots)} (a run is a work directory holding '
              'the dumped config of a generated config)', file=sys.stderr)
        return 1
    missing = [r for r in results
               if not (set(r.values) & {'test', 'ss', 'ms'} or (args.use_val and r.values))]
    for run in missing:
        print(f'no test result in {run.path} ({run.config})', file=sys.stderr)
    text = format_tables(summarize(results, use_val=args.use_val))
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
