"""The checkpoint format registry: one entry per format module, the lists the loaders and tools derive
from it, and the registry's own errors (a format without a name, a name given twice, an unknown name)."""

import pytest

from vitdet_bench.checkpoint import (
    CHECKPOINT_FORMATS,
    CONVVIT_FORMATS,
    DETECTOR_FORMATS,
    FORMATS,
    INIT_FORMATS,
    METHOD_LAYOUTS,
    WRITABLE_LAYOUTS,
    CheckpointFormat,
    get_format,
)
from vitdet_bench.checkpoint.formats.registry import FormatRegistry


def test_the_lists_are_the_registrys_in_registration_order():
    assert FORMATS == ("mae", "beit", "mocov3", "deit", "timm", "maelite", "vitdet_bench", "vitdet")
    assert DETECTOR_FORMATS == ("detectron2", "detector")
    assert CONVVIT_FORMATS == ("convmae", "vitdet_bench")
    assert INIT_FORMATS == ("auto",) + DETECTOR_FORMATS + FORMATS + ("convmae",)
    assert list(METHOD_LAYOUTS) == ["mae", "beit", "mocov3", "deit", "maelite", "convmae"]
    assert WRITABLE_LAYOUTS == ("mae", "beit", "mocov3", "deit", "convmae")
    assert [f.name for f in CHECKPOINT_FORMATS] == [*FORMATS[:6], "convmae", "vitdet_bench", "vitdet", "detectron2",
                                                    "detector", "open_clip"]


def test_every_format_states_its_facts():
    for fmt in CHECKPOINT_FORMATS:
        assert fmt.name and fmt.label and fmt.reads_into, type(fmt).__name__
        assert set(fmt.reads_into) <= {"vit", "convvit", "detector", "teacher"}
        assert get_format(fmt.name) is fmt
    orders = [f.detect_order for f in CHECKPOINT_FORMATS]
    assert len(set(orders)) == len(orders)  # auto-detection never depends on registration order


def test_a_new_format_is_one_class_and_one_registration():
    registry = FormatRegistry("test registry")

    @registry.register
    class Toy(CheckpointFormat):
        name = "toy"
        label = "a toy format"

    assert "toy" in registry and isinstance(registry.get("toy"), Toy) and registry.names("vit") == ("toy",)
    with pytest.raises(ValueError, match="a format named 'toy' is already in the test registry"):
        registry.register(Toy)
    with pytest.raises(ValueError, match="Nameless has no name"):
        registry.register(type("Nameless", (CheckpointFormat,), {}))
    with pytest.raises(KeyError, match=r"no checkpoint format 'nope' in the test registry; known: \('toy',\)"):
        registry.get("nope")
