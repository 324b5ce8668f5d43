"""The demo's pictures (PNG, matplotlib): attention maps, class-to-prompt maps, loss curves and
a segmentation overlay. Every function draws what the run recorded; nothing is computed here.
The attention and map pictures are :mod:`mmda_vpt.visualization`'s, the ones
``PromptVisualizationHook`` sends to TensorBoard during training.
"""
import json
import os.path as osp
import re
import textwrap
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmda_vpt.visualization import (attention_rows, draw_attention, draw_class_prompt_map,
                                    save_image)

__all__ = [
    'read_scalars', 'plot_attention', 'plot_prompt_maps', 'read_tensorboard_images',
    'plot_loss_curves', 'plot_seg_overlay', 'plot_pretrain_curve'
]


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def read_scalars(path: str) -> List[dict]:
    """The records of an mmengine ``vis_data/scalars.json`` (one JSON object per line)."""
    records = []
    if path and osp.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    return records


def plot_attention(out: str, captures: Dict[str, dict], methods: Sequence[str],
                   titles: Dict[str, str]) -> None:
    """The paper's Fig. 3 on the demo: attention of the CLS token and of every prompt over the
    patches, in a shallow and a guided layer, one row per image and method.

    Drawn by :func:`mmda_vpt.visualization.draw_attention`, the picture
    ``PromptVisualizationHook`` sends to TensorBoard.

    Args:
        out: PNG path.
        captures: Per method, what ``capture_attention`` of the demo returned: what
            :func:`mmda_vpt.visualization.capture_attention` returns, with ``labels`` and
            optionally ``class_to_prompt``.
        methods: Methods to draw, in order (e.g. VPT-Deep then DA-VPT).
        titles: Display name of every method.
    """
    layers = captures[methods[0]]['layers']
    by_method = []
    for method in methods:
        cap = captures[method]
        labels, preds = [int(v) for v in cap['labels']], [int(v) for v in cap['preds']]
        highlight = None
        if cap.get('class_to_prompt') is not None:
            highlight = [int(cap['class_to_prompt'][label]) for label in labels]
        by_method.append(attention_rows(
            cap, [f'{titles[method]}\nlabel {label}, pred {pred}'
                  for label, pred in zip(labels, preds)], highlight, guided=layers[-1:]))
    rows = [row for image_rows in zip(*by_method) for row in image_rows]  # image by image
    save_image(draw_attention(rows, title='Attention of the CLS token and of the prompts over '
                              f'the patches (layer {layers[0]}: shallow, layer {layers[-1]}: '
                              "guided; *p: the prompt of the image's class)"), out)


def _runs_label(names: Sequence[str]) -> str:
    """``['DA-VPT seed0', 'DA-VPT seed1', 'DA-VPT+ seed3']`` -> ``'DA-VPT seeds 0-1; DA-VPT+
    seed 3'``."""
    runs: Dict[str, list] = {}
    for name in names:
        method, _, run = name.rpartition(' ')
        runs.setdefault(method, []).append(run)
    parts = []
    for method, labels in runs.items():
        seeds = [re.fullmatch(r'seed(\d+)', label) for label in labels]
        if not all(seeds):
            parts.append(f'{method} {", ".join(labels)}')
            continue
        numbers = sorted(int(m.group(1)) for m in seeds)
        spans, start = [], numbers[0]
        for previous, number in zip(numbers, numbers[1:] + [None]):
            if number != previous + 1 if number is not None else True:
                spans.append(str(start) if start == previous else f'{start}-{previous}')
                start = number
        parts.append(f'{method} seed{"s" if len(numbers) > 1 else ""} {", ".join(spans)}')
    return '; '.join(parts)


def plot_prompt_maps(out: str, maps_by_run: Dict[str, List[tuple]], num_prompts: int,
                     class_names: Optional[Sequence[str]] = None) -> None:
    """The class-to-prompt maps before and after training, side by side: one panel per distinct
    map, its title naming the runs that share it.

    Every panel is :func:`mmda_vpt.visualization.draw_class_prompt_map`'s picture, the one
    ``PromptVisualizationHook`` sends to TensorBoard (where every update of a run is a step).

    Args:
        out: PNG path.
        maps_by_run: Per run, ``[(epoch, class_to_prompt list), ...]``; epoch 0 is the map
            before training. The first and the last are drawn.
        num_prompts: M, the prompts (columns).
        class_names: The row labels. Defaults to None (the class indices).
    """
    groups: Dict[tuple, List[str]] = {}
    for name, maps in maps_by_run.items():
        if not maps:
            continue
        for epoch, mapping in (maps[0], maps[-1]) if len(maps) > 1 else (maps[0], ):
            when = 'before training' if epoch == 0 else f'after epoch {epoch}'
            groups.setdefault((when, tuple(mapping)), []).append(name)
    if not groups:
        return
    panels = []
    for (when, mapping), names in groups.items():
        runs = textwrap.fill(_runs_label(names), 44, break_on_hyphens=False)
        panels.append(draw_class_prompt_map(list(mapping), num_prompts, class_names,
                                            title=f'{when}: {runs}'))
    height = max(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, width - p.shape[1]), (0, 0)),
                     constant_values=255) for p in panels]
    per_row = min(3, len(panels))
    panels += [np.full_like(panels[0], 255)] * (-len(panels) % per_row)
    rows = [np.concatenate(panels[i:i + per_row], axis=1)
            for i in range(0, len(panels), per_row)]
    save_image(np.concatenate(rows, axis=0), out)


def read_tensorboard_images(folder: str) -> Dict[str, tuple]:
    """The last picture of every image tag of the TensorBoard event files in ``folder``, read
    with tensorboard's own reader: ``{tag: (step, (H, W, 3) uint8 RGB)}``."""
    import cv2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(folder, size_guidance={'images': 0})
    accumulator.Reload()
    found = {}
    for tag in accumulator.Tags().get('images', []):
        event = accumulator.Images(tag)[-1]
        image = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8),
                             cv2.IMREAD_COLOR)
        found[tag] = (event.step, image[..., ::-1])
    return found


def _train_series(records: List[dict], key: str):
    steps = [r['step'] for r in records if key in r and 'lr' in r]
    values = [r[key] for r in records if key in r and 'lr' in r]
    return np.array(steps), np.array(values)


def plot_loss_curves(out: str, scalars_by_run: Dict[str, str]) -> None:
    """Training curves of the loss terms, from each run's ``scalars.json``.

    The cross-entropy is logged as ``loss_cls`` where ``PromptMetricLossHook`` trains (``loss``
    is then the total) and as ``loss`` without it; the metric terms are logged as
    ``loss_ml_patch`` and ``loss_ml_cls`` (already weighted by beta and lambda).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for name, path in scalars_by_run.items():
        records = read_scalars(path)
        ce_key = 'loss_cls' if any('loss_cls' in r for r in records) else 'loss'
        for ax, key in zip(axes, (ce_key, 'loss_ml_patch', 'loss_ml_cls')):
            steps, values = _train_series(records, key)
            if len(steps):
                ax.plot(steps, values, label=name, linewidth=1.2)
    titles = ('cross-entropy', 'beta * L_ML(x, p)  (loss_ml_patch)',
              'lambda * L_ML(p, x_cls)  (loss_ml_cls)')
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_pretrain_curve(out: str, scalars_path: str) -> None:
    """The pre-training loss on Fashion-MNIST."""
    plt = _pyplot()
    steps, values = _train_series(read_scalars(scalars_path), 'loss')
    if not len(steps):
        return
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(steps, values, linewidth=1.2)
    ax.set_xlabel('iteration', fontsize=8)
    ax.set_title('Pre-training on Fashion-MNIST: loss', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)


def plot_seg_overlay(out: str, samples: List[dict], classes: Sequence[str],
                     palette: Sequence[Sequence[int]], title: Optional[str] = None) -> None:
    """Image, ground truth and prediction overlays of the held-out segmentation images
    (class 0, the background, and unlabelled pixels are left uncoloured).

    Args:
        out: PNG path.
        samples: ``dict(name, image (H, W, 3) uint8 RGB, gt (H, W), pred (H, W))`` each.
        classes: Class names.
        palette: RGB colour of every class.
        title: Figure title.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch
    colours = np.array(palette, dtype=np.float32)
    ratios = [s['image'].shape[0] / s['image'].shape[1] for s in samples]
    fig, axes = plt.subplots(len(samples), 3, figsize=(10, 3.3 * sum(ratios) + 1.5),
                             squeeze=False, layout='constrained',
                             gridspec_kw=dict(height_ratios=ratios))
    for row, sample in zip(axes, samples):
        image = sample['image'].astype(np.float32)
        for ax, key, name in zip(row, (None, 'gt', 'pred'),
                                 ('image', 'ground truth', 'prediction')):
            if key is None:
                shown = image
            else:
                labels = sample[key]
                overlay = colours[np.clip(labels, 0, len(colours) - 1)]
                valid = ((labels != 255) & (labels != 0))[..., None]  # 0: background
                shown = np.where(valid, 0.45 * image + 0.55 * overlay, image)
            ax.imshow(shown.clip(0, 255).astype(np.uint8))
            ax.set_title(f'{sample["name"]}: {name}', fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(color=np.array(c) / 255.0, label=n) for n, c in zip(classes, palette)]
    fig.legend(handles=handles, loc='outside lower center', ncol=len(classes), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)
