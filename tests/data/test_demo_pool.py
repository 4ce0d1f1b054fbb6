"""The demo's object-centric pre-training pool and probe set (vitdet_bench/data/demo_pool.py)."""

import hashlib
import json
import os

import numpy as np
import pytest

from vitdet_bench.data.demo import DEFAULT_SPLITS, draw_demo_image
from vitdet_bench.data.demo_pool import (
    draw_pool_image,
    ensure_demo_pool,
    ensure_demo_probe_set,
    ensure_image_set,
    read_image_set,
)


def test_sets_are_deterministic_parallel_or_not_and_prefixes_of_larger_ones(tmp_path):
    a = ensure_demo_pool(40, root=str(tmp_path / "a"), size=64, workers=2)
    b = ensure_demo_pool(24, root=str(tmp_path / "b"), size=64, workers=1)
    ia, la, meta = read_image_set(a)
    ib, lb, _ = read_image_set(b)
    assert (ia.shape == (40, 64, 64, 3) and ia.dtype == np.uint8
            and meta["classes"] == ["circle", "square", "triangle", "star"])
    assert np.array_equal(ia[:24], ib) and np.array_equal(la[:24], lb)
    for i in (0, 39):
        drawn = draw_pool_image(0, "pool", i, 64)
        assert np.array_equal(ia[i], drawn.image) and la[i] == drawn.classes[0]
    assert meta["label_counts"] == np.bincount(la, minlength=4).tolist()
    assert ensure_demo_pool(40, root=str(tmp_path / "a"), size=64) == a  # cached: not drawn again
    assert not [n for n in os.listdir(tmp_path / "a") if n.startswith(".")]  # no temporary folder left


def test_images_are_object_centric_with_the_label_the_dominant_shape():
    """The labelled shape is the largest visible object in (nearly) every image, covers a large part
    of it, and classes are balanced (the probe's majority class is about 25%)."""
    dominant, share, labels = 0, [], []
    for i in range(400):
        d = draw_pool_image(0, "pool", i)
        areas = np.bincount(d.owner.ravel().astype(np.int64) + 1, minlength=len(d.classes) + 1)[1:]
        dominant += int(np.argmax(areas)) == 0
        share.append(areas[0] / d.owner.size)
        labels.append(d.classes[0])
    assert dominant >= 396 and np.median(share) > 0.15
    assert max(np.bincount(labels, minlength=4)) / len(labels) < 0.32


def test_pool_probe_and_detection_images_are_disjoint():
    det = {hashlib.sha1(draw_demo_image(0, s, i).image.tobytes()).hexdigest()
           for s in ("train", "val") for i in range(DEFAULT_SPLITS["val"])}
    pool = {hashlib.sha1(draw_pool_image(0, "pool", i).image.tobytes()).hexdigest() for i in range(300)}
    probe = {hashlib.sha1(draw_pool_image(0, "probe", i).image.tobytes()).hexdigest() for i in range(300)}
    assert len(pool) == len(probe) == 300 and not pool & probe and not (pool | probe) & det
    with pytest.raises(ValueError, match="unknown demo image set 'val'"):
        draw_pool_image(0, "val", 0)


def test_a_damaged_set_names_its_directory_and_an_unfinished_build_is_redone(tmp_path, caplog):
    root = str(tmp_path)
    out = ensure_demo_probe_set(8, root=root, size=32, workers=1)
    with open(os.path.join(out, "labels.npy"), "wb") as f:
        f.write(b"not numpy")
    with pytest.raises(ValueError, match=f"demo image set in {out} is unreadable.*delete {out}"):
        read_image_set(out)
    np.save(os.path.join(out, "labels.npy"), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="inconsistent: images.npy \\(8, 32, 32, 3\\), labels.npy \\(5,\\)"):
        read_image_set(out)
    # A folder without its DONE marker (a build from an older version) is replaced, not trusted or
    # tripped over; a dead builder's temporary folder is deleted.
    os.remove(os.path.join(out, "DONE"))
    stale = tmp_path / ".probe_tmp_nohost_1_x"
    import socket

    dead = tmp_path / f".probe_tmp_{socket.gethostname()}_999999_abc"
    dead.mkdir()
    stale.mkdir()
    with caplog.at_level("WARNING"):
        again = ensure_image_set("probe", 8, root=root, size=32, workers=1)
    assert again == out and read_image_set(out)[1].shape == (8,)
    assert not dead.exists() and stale.exists()  # another host's folder is not ours to judge
    assert "no DONE marker" in caplog.text and "process 999999 is gone" in caplog.text


def test_a_held_out_split_is_deterministic_and_disjoint(tmp_path, demo_root):
    """The COCO selection split's mechanism, on the demo's training annotations: the same images
    every time, disjoint from the search's training images, together the whole set."""
    from vitdet_bench.data.held_out import SELECT_IDS_FILE, held_out_split

    source = os.path.join(demo_root, "train.json")
    a = held_out_split(source, 300, seed=0, root=str(tmp_path / "a"))
    b = held_out_split(source, 300, seed=0, root=str(tmp_path / "b"))
    ids = lambda p: [im["id"] for im in json.load(open(p))["images"]]  # noqa: E731
    assert ids(a[1]) == ids(b[1]) and len(ids(a[1])) == 300
    assert not set(ids(a[0])) & set(ids(a[1])) and sorted(ids(a[0]) + ids(a[1])) == sorted(ids(source))
    listed = open(os.path.join(os.path.dirname(a[1]), SELECT_IDS_FILE)).read().split()
    assert sorted(map(int, listed)) == sorted(ids(a[1]))
    held = set(ids(a[1]))
    assert all(x["image_id"] in held for x in json.load(open(a[1]))["annotations"])
    with pytest.raises(ValueError, match="has 2000 images: cannot hold out 5000"):
        held_out_split(source, 5000, root=str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="VITDET_BENCH_DATASETS"):
        held_out_split(str(tmp_path / "missing.json"), 10)
