"""Matplotlib figures as RGB arrays (what mmengine's ``Visualizer.add_image`` takes), and PNGs.

Figures are built as ``matplotlib.figure.Figure`` on their own Agg canvas, never through
``pyplot``: drawing during training leaves the user's matplotlib backend and pyplot's figure
list alone.
"""
import os
import os.path as osp
from typing import Tuple

import numpy as np

__all__ = ['new_figure', 'figure_to_array', 'save_image']


def new_figure(figsize: Tuple[float, float], dpi: int = 100):
    """A figure on its own Agg canvas.

    Args:
        figsize (tuple[float, float]): Width and height in inches.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig) -> np.ndarray:
    """Render a figure of :func:`new_figure` at its own dpi.

    Args:
        fig (matplotlib.figure.Figure): The figure.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_image(image: np.ndarray, path: str) -> None:
    """Write an (H, W, 3) uint8 RGB array as a PNG, creating its folder.

    Args:
        image (np.ndarray): The picture.
        path (str): The PNG file.

    Raises:
        OSError: If the file cannot be written.
    """
    import cv2
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f'could not write {path}')
