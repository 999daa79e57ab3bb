"""Lepton data: loaders, the preprocessing pipeline saved with the model, splits."""

from lepton.data.image_folder import image_dataset_from_directory, img_to_array, load_img
from lepton.data.image_pipeline import ImagePipeline
from lepton.data.images import ImageFolder, build_cache, scan_folder
from lepton.data.loaders import as_frame, read_table, source_kind
from lepton.data.pipeline import Pipeline
from lepton.data.split import class_weights, split_indices

__all__ = ["ImageFolder", "ImagePipeline", "Pipeline", "as_frame", "build_cache",
           "class_weights", "image_dataset_from_directory", "img_to_array", "load_img",
           "load_preprocessing", "read_table", "scan_folder", "source_kind", "split_indices"]


def load_preprocessing(state: dict):
    """Rebuild a fitted pipeline (table, text or image) from its JSON state."""
    if state.get("kind") == "image":
        return ImagePipeline.from_json(state)
    return Pipeline.from_json(state)
