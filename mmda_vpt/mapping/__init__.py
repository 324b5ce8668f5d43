"""The class-to-prompt map: k-means over class features, the map object, the initial feature pass
and the labels each token is scored against."""
from .class_kmeans import ClassMap
from .class_prompt_map import ClassPromptMap, MapOptions
from .labels import image_labels, patch_labels

__all__ = ['ClassMap', 'ClassPromptMap', 'MapOptions', 'image_labels', 'patch_labels']
