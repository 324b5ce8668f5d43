"""Layer indices of a ViT, negative from the end, as 0-based indices (one check for all)."""
from typing import List, Sequence

__all__ = ['resolve_layer_indices']


def resolve_layer_indices(layers: Sequence[int], num_layers: int, what: str) -> List[int]:
    """``layers`` as 0-based indices into a ViT of ``num_layers`` blocks, in their order.

    Args:
        layers (Sequence[int]): Indices; negative ones count from the end.
        num_layers (int): The depth of the ViT.
        what (str): What the indices are, for the error (e.g. ``'guided layer'``).

    Returns:
        list[int]: The indices, 0-based.

    Raises:
        ValueError: When an index is outside the depth.
    """
    resolved = []
    for layer in layers:
        if not -num_layers <= layer < num_layers:
            raise ValueError(f'{what} {layer} is outside the depth of this ViT ({num_layers} '
                             f'layers: valid indices are {-num_layers}..{num_layers - 1})')
        resolved.append(int(layer) % num_layers)
    return resolved
