"""Classification networks whose 1x1-conv heads give class activation maps."""
from infercam.models.resnet38d import ResNet38Classifier, ResNet38d

__all__ = ["ResNet38d", "ResNet38Classifier"]
