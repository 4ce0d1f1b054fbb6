"""Shared helpers: distributed communication, logging, training events (the metric storage and its writers,
as Detectron2's utils.events), timing, atomic file writing, locks."""
