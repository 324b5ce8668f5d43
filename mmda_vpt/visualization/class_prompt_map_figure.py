"""The class-to-prompt map figure: classes (rows, ordered by prompt) x prompts (columns)."""
from typing import Optional, Sequence

import numpy as np

from .figure import figure_to_array, new_figure

__all__ = ['draw_class_prompt_map']


def draw_class_prompt_map(class_to_prompt: Sequence[int], num_prompts: int,
                          class_names: Optional[Sequence[str]] = None, max_names: int = 60,
                          title: Optional[str] = None, dpi: int = 100) -> np.ndarray:
    """The class-to-prompt map as a picture.

    One row per class, ordered by prompt (then by class index), one column per prompt; a class's
    cell is filled in its prompt's column. The columns are labelled with the prompt and its
    cluster size. Up to ``max_names`` classes every row is named (``class_names``, else the
    class index); beyond, the rows are thin and each prompt's block is labelled with its size
    and its first three class names, so 555 classes stay legible.

    Args:
        class_to_prompt (Sequence[int]): The prompt of every class (C,).
        num_prompts (int): M, the prompts (columns), used or not.
        class_names (Sequence[str], optional): C names. Defaults to None (the indices).
        max_names (int): Name every class up to this many classes. Defaults to 60.
        title (str, optional): The figure's title. Defaults to None (the classes and prompts
            counted).
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        ValueError: If a prompt index is outside ``0..num_prompts - 1`` or the names do not
            match the classes.
    """
    mapping = np.asarray(class_to_prompt, dtype=np.int64).reshape(-1)
    num_classes = len(mapping)
    if num_classes and (mapping.min() < 0 or mapping.max() >= num_prompts):
        raise ValueError(f'class_to_prompt holds prompts outside 0..{num_prompts - 1}: '
                         f'{sorted(set(mapping[(mapping < 0) | (mapping >= num_prompts)].tolist()))}')
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f'{len(class_names)} class names for {num_classes} classes')
    order = np.lexsort((np.arange(num_classes), mapping))
    sizes = np.bincount(mapping, minlength=num_prompts)
    grid = np.full((num_classes, num_prompts), np.nan)
    grid[np.arange(num_classes), mapping[order]] = mapping[order] % 20
    named = num_classes <= max_names
    width = 3.2 + 0.42 * num_prompts + (1.2 if named or class_names is not None else 0.0)
    height = (1.6 + 0.17 * num_classes) if named else min(10.0, 3.0 + 0.012 * num_classes)
    fig = new_figure((width, height), dpi)
    ax = fig.subplots()
    ax.imshow(grid, cmap='tab20', vmin=0, vmax=19, aspect='auto', interpolation='nearest')
    ax.set_xticks(range(num_prompts))
    ax.set_xticklabels([f'{p}\n({n})' for p, n in enumerate(sizes)], fontsize=7)
    ax.set_xlabel('prompt (classes)', fontsize=8)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    if named:
        names = ([str(class_names[c]) for c in order] if class_names is not None else
                 [str(c) for c in order])
        ax.set_yticks(range(num_classes))
        ax.set_yticklabels(names, fontsize=7)
    else:
        used = [p for p in range(num_prompts) if sizes[p]]
        labels = []
        for p in used:
            members = order[bounds[p]:bounds[p + 1]]
            label = f'p{p}: {sizes[p]}'
            if class_names is not None:  # the block's first classes, by index
                shown = ', '.join(str(class_names[c]) for c in sorted(members)[:3])
                label = f'{label} ({shown[:36]}{", ..." if len(members) > 3 else ""})'
            labels.append(label)
        ax.set_yticks([(bounds[p] + bounds[p + 1] - 1) / 2 for p in used])
        ax.set_yticklabels(labels, fontsize=7)
    for edge in bounds[1:-1]:
        ax.axhline(edge - 0.5, color='0.6', linewidth=0.4)
    ax.set_ylabel('class (ordered by prompt)', fontsize=8)
    ax.set_xlim(-0.5, num_prompts - 0.5)
    if title is None:
        title = f'Class-to-prompt map: {num_classes} classes, {num_prompts} prompts'
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return figure_to_array(fig)
