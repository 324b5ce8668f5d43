"""The paper's numbers (top-1 % or mIoU %, mean of 3 seeds) beside which results are reported.

Source: the paper's tables (the project's reference-numbers.md lists them). The generated configs
cite them, the ``metafile.yml`` files list them and :mod:`mmda_vpt.paper.aggregate` prints them
beside the runs'.
"""
from typing import Dict, Tuple

__all__ = ['REFERENCE_FGVC', 'REFERENCE_GROUPS', 'REFERENCE_SEG']

REFERENCE_FGVC: Dict[Tuple[str, str], Dict[str, float]] = {
    ('in21k', 'vpt-deep'): dict(cub=88.5, nabirds=84.2, flowers=99.0, dogs=90.2, cars=83.6),
    ('in21k', 'davpt'): dict(cub=90.2, nabirds=87.4, flowers=99.4, dogs=89.4, cars=89.7),
    ('in21k', 'davpt-plus'): dict(cub=90.8, nabirds=88.3, flowers=99.8, dogs=89.8, cars=91.0),
}
# (backbone, method) -> FGVC mean and VTAB group means.
REFERENCE_GROUPS: Dict[Tuple[str, str], Dict[str, float]] = {
    ('in21k', 'vpt-deep'): dict(FGVC=89.11, Natural=78.48, Specialized=82.43, Structured=54.98),
    ('in21k', 'davpt'): dict(FGVC=91.22, Natural=80.25, Specialized=85.12, Structured=58.71),
    ('in21k', 'davpt-plus'): dict(FGVC=91.94, Natural=81.98, Specialized=86.47,
                                  Structured=59.96),
    ('mae', 'vpt-deep'): dict(FGVC=72.02, Natural=36.02, Specialized=60.61, Structured=26.57),
    ('mae', 'davpt-plus'): dict(FGVC=83.20, Natural=66.59, Specialized=82.96, Structured=59.28),
    ('mocov3', 'vpt-deep'): dict(FGVC=83.12, Natural=70.27, Specialized=83.04, Structured=42.38),
    ('mocov3', 'davpt-plus'): dict(FGVC=86.16, Natural=76.86, Specialized=84.71,
                                   Structured=58.98),
}
# (dataset key, method) -> (mIoU single-scale, mIoU multi-scale).
REFERENCE_SEG: Dict[Tuple[str, str], Tuple[float, float]] = {
    ('ade20k', 'full-ft'): (47.60, 49.18),
    ('ade20k', 'vpt-deep'): (44.08, 46.01),
    ('ade20k', 'davpt'): (45.10, 47.07),
    ('ade20k', 'davpt-plus'): (46.47, 47.21),
    ('pascal-context-60', 'full-ft'): (53.69, 55.21),
    ('pascal-context-60', 'vpt-deep'): (49.51, 50.46),
    ('pascal-context-60', 'davpt'): (50.15, 51.04),
    ('pascal-context-60', 'davpt-plus'): (50.40, 51.28),
}
