"""The class-to-prompt map: its k-means, the map object, its feature passes and the labels.

k-means steps (:mod:`.kmeans`) and the class clustering built on them (:mod:`.class_kmeans`),
the map object (:mod:`.class_prompt_map`), the per-class features of a forward and of the
initial pass (:mod:`.class_features`, :mod:`.initial_pass_loader`) and the labels each token is
scored against (:mod:`.labels`).
"""
from .class_kmeans import ClassMap
from .class_prompt_map import ClassPromptMap, MapOptions
from .labels import image_labels, patch_labels

__all__ = ['ClassMap', 'ClassPromptMap', 'MapOptions', 'image_labels', 'patch_labels']
