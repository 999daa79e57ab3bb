"""Lepton Core layers (Keras-style, channels-last, lazily built)."""

from lepton.core.layers.attention import MultiHeadAttention, TransformerEncoder
from lepton.core.layers.base import Layer, register
from lepton.core.layers.conv import Conv1D, Conv2D
from lepton.core.layers.core import (
    Activation,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    ReLU,
    Rescaling,
    Reshape,
)
from lepton.core.layers.depthwise import DepthwiseConv2D, SeparableConv2D
from lepton.core.layers.merge import Add, Concatenate
from lepton.core.layers.normalization import BatchNormalization, LayerNormalization
from lepton.core.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from lepton.core.layers.recurrent import GRU, LSTM, Bidirectional
from lepton.core.layers.reshaping import ZeroPadding2D
from lepton.core.layers.symbolic import Input
from lepton.core.layers.symbolic_tensor import SymbolicTensor

__all__ = [
    "Activation", "Add", "AveragePooling1D", "AveragePooling2D", "BatchNormalization",
    "Bidirectional", "Concatenate", "Conv1D", "Conv2D", "Dense", "DepthwiseConv2D", "Dropout",
    "Embedding",
    "Flatten", "GRU", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "Input", "LSTM", "Layer", "LayerNormalization", "MaxPooling1D",
    "MaxPooling2D", "MultiHeadAttention", "ReLU", "Rescaling", "Reshape", "SeparableConv2D",
    "SymbolicTensor", "TransformerEncoder", "ZeroPadding2D", "register",
]
