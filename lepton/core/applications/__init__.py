"""Pretrained backbones built from Lepton layers: MobileNetV2, ResNet18/34/50 and VGG16.

Each is an ordinary functional ``Model`` (so ``summary``, save/load, serving, export and
compression see nothing special) with Keras' arguments (``include_top``, ``weights``,
``input_shape``, ``pooling``, ``classes``). ``weights`` is None, a path to a safetensors
file in torchvision's key layout, or ``'imagenet'`` for ``$LEPTON_HOME/weights/<name>.
safetensors``; nothing is ever downloaded.
"""

from lepton.core.applications import mobilenet_v2, resnet, vgg16
from lepton.core.applications.fuse import fold_batchnorm
from lepton.core.applications.imagenet import decode_predictions, preprocess_input
from lepton.core.applications.mobilenet_v2 import MobileNetV2
from lepton.core.applications.resnet import ResNet18, ResNet34, ResNet50
from lepton.core.applications.vgg16 import VGG16
from lepton.core.applications.weights import weights_dir

__all__ = ["MobileNetV2", "ResNet18", "ResNet34", "ResNet50", "VGG16", "decode_predictions",
           "fold_batchnorm", "mobilenet_v2", "preprocess_input", "resnet", "vgg16",
           "weights_dir"]
