"""infercam: an executable reproduction of "Inferring the Class Conditional Response Map for
Weakly Supervised Semantic Segmentation" (Sun, Zhang, Barnes, WACV 2022)."""

__version__ = "0.1.0"
