"""Each pre-training method states its facts once, on its class, and they agree with the checkpoint
formats: a label, the batch layout the speed tool builds, whether it takes a teacher, and the format
of its official release (the format module's layout names the method)."""

import pytest

from vitdet_bench.checkpoint import CHECKPOINT_FORMATS, METHOD_LAYOUTS, get_format
from vitdet_bench.pretrain import PRETRAIN_METHODS, PretrainModel, method_label

EIGHT = {"mae", "mocov3", "beit", "supervised", "feature_mim", "maelite", "convmae", "fastconvmae"}


def test_every_method_is_registered_with_a_label_and_a_batch_layout():
    assert set(PRETRAIN_METHODS) == EIGHT
    for name, cls in PRETRAIN_METHODS.items():
        assert cls.method == name and cls.label and method_label(name) == cls.label
        assert "image" in cls.batch_keys and set(cls.batch_keys) <= {"image", "image2", "label", "mask"}
    assert PRETRAIN_METHODS["mocov3"].batch_keys == ("image", "image2", "label")
    assert {n for n, c in PRETRAIN_METHODS.items() if "mask" in c.batch_keys} == {"beit", "feature_mim"}
    assert {n for n, c in PRETRAIN_METHODS.items() if c.uses_teacher} == {"feature_mim", "maelite"}
    assert method_label("no_such_method") == "no_such_method"


def test_official_formats_and_the_format_modules_agree():
    official = {name: cls.official_format() for name, cls in PRETRAIN_METHODS.items()}
    assert official == {"mae": "mae", "mocov3": "mocov3", "beit": "beit", "supervised": "deit", "maelite": "maelite",
                        "convmae": "convmae", "feature_mim": None, "fastconvmae": None}
    for fmt_name, layout in METHOD_LAYOUTS.items():
        assert layout.method in PRETRAIN_METHODS, fmt_name  # every official layout holds a method here
        assert get_format(fmt_name).official


def test_a_second_method_of_the_same_name_is_refused():
    with pytest.raises(ValueError, match="pre-training method 'mae' is defined twice"):
        type("OtherMAE", (PretrainModel,), {"method": "mae", "__module__": __name__})
    assert all(f.name for f in CHECKPOINT_FORMATS)
