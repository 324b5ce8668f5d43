"""The attention figure: per row one image, then the CLS token's and the prompts' maps over it."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .figure import figure_to_array, new_figure

__all__ = ['AttentionRow', 'attention_rows', 'draw_attention']


@dataclass
class AttentionRow:
    """One row of :func:`draw_attention`: an image through one model.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB or (H, W) grey, the area the patch grid covers.
        maps (dict): {layer: (prefix + M, h, w) array}: the CLS token's map, then the prompts'.
        prefix (int): Tokens before the prompts in ``maps`` (1: the CLS token). Defaults to 1.
        title (str): Shown over the image. Defaults to ''.
        highlight (dict): {layer: prompt} marked with a star (e.g. the prompt of the image's
            class in a guided layer). Defaults to an empty dict.
    """
    image: np.ndarray
    maps: Dict[int, np.ndarray]
    prefix: int = 1
    title: str = ''
    highlight: Dict[int, int] = field(default_factory=dict)


def attention_rows(captured: dict, titles: Optional[Sequence[str]] = None,
                   highlight: Optional[Sequence[Optional[int]]] = None,
                   guided: Sequence[int] = ()) -> List[AttentionRow]:
    """One :class:`AttentionRow` per image of what
    :func:`~mmda_vpt.visualization.capture_attention` returned.

    Args:
        captured (dict): What ``capture_attention`` returned.
        titles (Sequence[str], optional): One title per image. Defaults to None (none).
        highlight (Sequence[int | None], optional): Per image the prompt to mark in the
            ``guided`` layers (the prompt of its class). Defaults to None.
        guided (Sequence[int]): The layers where ``highlight`` applies. Defaults to ().

    Returns:
        list[AttentionRow]: One row per image, in order.
    """
    rows = []
    for i, image in enumerate(captured['images']):
        marked = {}
        if highlight is not None and highlight[i] is not None:
            marked = {layer: int(highlight[i]) for layer in captured['layers'] if layer in guided}
        rows.append(AttentionRow(image=image,
                                 maps={layer: captured['maps'][layer][i]
                                       for layer in captured['layers']},
                                 prefix=int(captured['prefix']),
                                 title=titles[i] if titles is not None else '',
                                 highlight=marked))
    return rows


#: Pixels: the side of a panel (its width; the height follows the image), the band above each
#: row for the panels' titles, the gap between panels and the band of the figure's title.
PANEL, TITLE_BAND, GAP, TOP_BAND = 96, 30, 4, 22


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest resize of an (h, w) or (h, w, c) array."""
    rows = (np.arange(height) * array.shape[0] // height)
    cols = (np.arange(width) * array.shape[1] // width)
    return array[rows][:, cols]


def _overlay(image: np.ndarray, attention: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``attention`` scaled to its maximum, coloured and laid over ``image`` (alpha 0.55)."""
    grid = attention / max(float(attention.max()), 1e-12)
    index = np.clip((grid * (len(colours) - 1)).round().astype(int), 0, len(colours) - 1)
    heat = _resize(colours[index], image.shape[0], image.shape[1])
    return 0.45 * image + 0.55 * heat


def draw_attention(rows: Sequence[AttentionRow], prompts: Optional[int] = None,
                   title: Optional[str] = None, panel: int = PANEL) -> np.ndarray:
    """The attention figure.

    Every row shows its image, then for every layer the CLS token's map and the maps of the
    first ``prompts`` prompts, each scaled to its own maximum, coloured (jet) and laid over the
    image. The panels are composed as pixels and only the titles drawn by matplotlib, so a
    figure of a dozen panels takes tens of milliseconds.

    Args:
        rows (Sequence[AttentionRow]): The rows, all with the same layers.
        prompts (int, optional): Prompts drawn per layer (the first ones). Defaults to None
            (all).
        title (str, optional): The figure's title. Defaults to None.
        panel (int): The width of a panel in pixels. Defaults to 96.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    if not rows:
        raise ValueError('draw_attention needs at least one row')
    from matplotlib import colormaps
    colours = colormaps['jet'](np.linspace(0, 1, 256))[:, :3] * 255
    layers = sorted(rows[0].maps)
    counts = []
    for layer in layers:
        shown = rows[0].maps[layer].shape[0] - rows[0].prefix
        counts.append(rows[0].prefix + (shown if prompts is None else min(prompts, shown)))
    columns = 1 + sum(counts)
    heights = [max(1, round(panel * r.image.shape[0] / r.image.shape[1])) for r in rows]
    top = TOP_BAND if title else 0
    width = GAP + columns * (panel + GAP)
    height = top + sum(TITLE_BAND + h + GAP for h in heights) + GAP
    canvas = np.full((height, width, 3), 255.0)
    labels = []  # (x, y, text)
    y = top
    for spec, h in zip(rows, heights):
        image = spec.image if spec.image.ndim == 3 else np.repeat(spec.image[..., None], 3, -1)
        image = _resize(image.astype(np.float64), h, panel)
        y_panel = y + TITLE_BAND
        panels = [(image, spec.title)]
        for layer, count in zip(layers, counts):
            maps = spec.maps[layer]
            for k in range(count):
                name = 'CLS' if k < spec.prefix else f'p{k - spec.prefix}'
                if k >= spec.prefix and spec.highlight.get(layer) == k - spec.prefix:
                    name = '*' + name
                panels.append((_overlay(image, maps[k], colours), f'L{layer} {name}'))
        for col, (pixels, text) in enumerate(panels):
            x = GAP + col * (panel + GAP)
            canvas[y_panel:y_panel + h, x:x + panel] = pixels
            labels.append((x + panel / 2, y_panel - 3, text))
        y = y_panel + h + GAP
    dpi = 100
    fig = new_figure((width / dpi, height / dpi), dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas.clip(0, 255).astype(np.uint8), interpolation='nearest')
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis('off')
    for x, y_text, text in labels:
        ax.text(x, y_text, text, ha='center', va='bottom', fontsize=6.5, linespacing=1.0)
    if title:
        ax.text(width / 2, top - 4, title, ha='center', va='bottom', fontsize=7.5)
    return figure_to_array(fig)
