"""What the tests share: paths, builders of official checkpoints, reference implementations and
recorders (as Detectron2's ``utils/testing.py``). Test modules import from here, never from each other."""
