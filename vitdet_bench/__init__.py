"""vitdet_bench: which pre-training makes the best plain ViT for object detection, and why."""

__version__ = "0.1.0"
