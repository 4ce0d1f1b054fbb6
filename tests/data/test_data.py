"""Data: demo set, COCO loading checks, LSJ invariants, reproducible streams, bad inputs."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch

from vitdet_bench.data import (
    CocoFormatError,
    DetectionDatasetMapper,
    ImageReadError,
    InfiniteTrainingSampler,
    LargeScaleJitter,
    annotation_to_mask,
    build_detection_train_loader,
    get_detection_dataset,
    load_coco_json,
)
from vitdet_bench.data.demo import draw_demo_image, generate_split


def test_demo_dataset_is_deterministic_and_exercises_all_formats(tmp_path):
    a = json.load(open(generate_split(str(tmp_path / "a"), "val", 12, seed=3)))
    b = json.load(open(generate_split(str(tmp_path / "b"), "val", 12, seed=3)))
    assert a == b
    segs = [ann["segmentation"] for ann in a["annotations"]]
    assert any(isinstance(s, list) for s in segs) and any(isinstance(s, dict) for s in segs)
    assert len({ann["category_id"] for ann in a["annotations"]}) == 4
    # Images are real files of the size the JSON says.
    img = a["images"][0]
    import cv2

    arr = cv2.imread(str(tmp_path / "a" / "val" / img["file_name"]))
    assert arr.shape[:2] == (img["height"], img["width"])


def test_demo_images_are_drawn_by_index_in_any_order():
    """An image depends only on (seed, split, index): drawing out of order, or again, gives the same
    pixels, and the splits' streams differ."""
    forward = [draw_demo_image(0, "train", i).image for i in range(6)]
    backward = [draw_demo_image(0, "train", i).image for i in reversed(range(6))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert not np.array_equal(draw_demo_image(0, "train", 3).image, draw_demo_image(0, "val", 3).image)
    assert not np.array_equal(draw_demo_image(0, "train", 3).image, draw_demo_image(1, "train", 3).image)
    with pytest.raises(ValueError, match="unknown demo split 'pool'"):
        draw_demo_image(0, "pool", 0)  # the pool is object-centric: demo_pool.draw_pool_image


def test_val_files_on_disk_are_what_the_generator_draws(demo_root):
    import cv2

    ok, enc = cv2.imencode(".jpg", draw_demo_image(0, "val", 0).image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok and enc.tobytes() == open(os.path.join(demo_root, "val", "000001.jpg"), "rb").read()


def test_named_slices_of_the_splits(demo_root):
    """The subsets are slices of their split with the split's image files: the tuning search's
    training and selection images partition demo_train, and the curve's images start demo_val."""
    train = json.load(open(os.path.join(demo_root, "train.json")))
    search = json.load(open(os.path.join(demo_root, "train_search.json")))
    select = json.load(open(os.path.join(demo_root, "select.json")))
    val100 = json.load(open(os.path.join(demo_root, "val100.json")))
    val = json.load(open(os.path.join(demo_root, "val.json")))
    ids = lambda d: [im["id"] for im in d["images"]]  # noqa: E731
    assert ids(search) + ids(select) == ids(train) and len(ids(select)) == 200
    assert ids(val100) == ids(val)[:100]
    for sub, full in ((search, train), (select, train), (val100, val)):
        keep = set(ids(sub))
        assert sub["annotations"] == [a for a in full["annotations"] if a["image_id"] in keep]


def test_demo_dataset_has_crowd_regions(demo_root):
    data = json.load(open(os.path.join(demo_root, "train.json")))
    assert any(a["iscrowd"] for a in data["annotations"])


def test_loader_contiguous_ids_filter_empty_and_masks_match_boxes(demo_root):
    records, meta = get_detection_dataset("demo_train", filter_empty=True)
    assert meta.thing_classes == ("circle", "square", "triangle", "star")
    assert all(any(not a["iscrowd"] for a in r["annotations"]) for r in records)
    for r in records[:5]:
        for a in r["annotations"]:
            assert 0 <= a["category_id"] < 4
            m = annotation_to_mask(a["segmentation"], r["height"], r["width"])
            ys, xs = np.nonzero(m)
            x, y, w, h = a["bbox"]
            assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
            assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1


@pytest.mark.parametrize("seed", range(6))
def test_lsj_invariants(demo_root, seed):
    records, _ = get_detection_dataset("demo_train", filter_empty=True)
    mapper = DetectionDatasetMapper(is_train=True, image_size=128)
    out = mapper(records[seed], seed=seed)
    image, inst = out["image"], out["instances"]
    h, w = image.shape[-2:]
    assert image.dtype == torch.uint8 and h <= 128 and w <= 128
    boxes, masks = inst["boxes"], inst["masks"]
    assert len(boxes) == len(masks) == len(inst["labels"])
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for box, m in zip(boxes, masks):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert torch.equal(box, torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32))
    # Same sample seed, same result.
    again = mapper(records[seed], seed=seed)
    assert torch.equal(again["image"], image) and torch.equal(again["instances"]["masks"], masks)


def test_lsj_flip_moves_image_and_masks_together():
    image = torch.arange(3 * 40 * 60, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(3, 40, 60)
    masks = torch.zeros((1, 40, 60), dtype=torch.uint8)
    masks[0, 5:15, 2:12] = 1
    labels = torch.tensor([1])
    keep = LargeScaleJitter(60, 1.0, 1.0, flip_prob=0.0)(image, masks, labels, seed=0)
    flip = LargeScaleJitter(60, 1.0, 1.0, flip_prob=1.0)(image, masks, labels, seed=0)
    assert torch.equal(keep[0], image)
    assert torch.equal(flip[0], image.flip(-1)) and torch.equal(flip[2], masks.flip(-1))
    assert flip[1].tolist() == [[48.0, 5.0, 58.0, 15.0]]


def test_sampler_resumes_exactly_and_shards_by_rank():
    full = InfiniteTrainingSampler(10, seed=1, start=0)
    it = iter(full)
    stream = [next(it) for _ in range(25)]
    resumed = iter(InfiniteTrainingSampler(10, seed=1, start=13))
    assert [next(resumed) for _ in range(12)] == stream[13:]
    # Each epoch is a permutation.
    assert sorted(i for i, _ in stream[:10]) == list(range(10))


def test_train_stream_does_not_depend_on_worker_count(demo_root):
    dataset = get_detection_dataset("demo_train", filter_empty=True)
    mapper = DetectionDatasetMapper(is_train=True, image_size=96)

    def first_batches(workers):
        loader = build_detection_train_loader(dataset, mapper, total_batch_size=2, num_workers=workers, seed=5)
        loader.set_start_iter(3)
        it = iter(loader)
        return [next(it) for _ in range(2)]

    a, b = first_batches(0), first_batches(2)
    for xa, xb in zip(sum(a, []), sum(b, [])):
        assert xa["image_id"] == xb["image_id"] and torch.equal(xa["image"], xb["image"])
        assert torch.equal(xa["instances"]["boxes"], xb["instances"]["boxes"])


# ---------------------------------------------------------------- bad inputs


def _small_copy(demo_root, tmp_path, n=3):
    data = json.load(open(os.path.join(demo_root, "val.json")))
    data["images"] = data["images"][:n]
    ids = {im["id"] for im in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for im in data["images"]:
        shutil.copy(os.path.join(demo_root, "val", im["file_name"]), img_dir / im["file_name"])
    return data, img_dir


def _write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_truncated_json_names_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [{"id": 1, "file_na')
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(str(path), str(tmp_path))
    assert "broken.json" in str(e.value) and "line 1" in str(e.value) and "truncated" in str(e.value)


def test_missing_top_level_field(tmp_path):
    with pytest.raises(CocoFormatError, match=r"missing top-level field 'categories'"):
        load_coco_json(_write(tmp_path, {"images": [], "annotations": []}), str(tmp_path))


def test_missing_image_field(demo_root, tmp_path):
    data, img_dir = _small_copy(demo_root, tmp_path)
    del data["images"][1]["height"]
    with pytest.raises(CocoFormatError, match=r"images\[1\] is missing field 'height'"):
        load_coco_json(_write(tmp_path, data), str(img_dir))


def test_negative_width_fails_or_is_skipped_with_count(demo_root, tmp_path, caplog):
    data, img_dir = _small_copy(demo_root, tmp_path)
    bad_id = data["annotations"][0]["id"]
    data["annotations"][0]["bbox"][2] = -4.0
    path = _write(tmp_path, data)
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(path, str(img_dir))
    assert f"annotation id {bad_id}" in str(e.value) and "ann.json" in str(e.value) and "width" in str(e.value)
    with caplog.at_level(logging.WARNING):
        records, _ = load_coco_json(path, str(img_dir), on_bad_annotation="skip")
    assert "skipped 1 bad annotations" in caplog.text
    assert sum(len(r["annotations"]) for r in records) == len(data["annotations"]) - 1


def test_unknown_category_names_annotation_and_category(demo_root, tmp_path):
    data, img_dir = _small_copy(demo_root, tmp_path)
    data["annotations"][1]["category_id"] = 99
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(_write(tmp_path, data), str(img_dir))
    assert f"annotation id {data['annotations'][1]['id']}" in str(e.value) and "category_id 99" in str(e.value)


def test_missing_image_file_names_file_and_id(demo_root, tmp_path):
    data, img_dir = _small_copy(demo_root, tmp_path)
    missing = data["images"][0]
    os.remove(img_dir / missing["file_name"])
    records, _ = load_coco_json(_write(tmp_path, data), str(img_dir))
    mapper = DetectionDatasetMapper(is_train=True, image_size=64)
    with pytest.raises(ImageReadError) as e:
        mapper(records[0])
    assert missing["file_name"] in str(e.value) and f"image id {missing['id']}" in str(e.value)


def test_corrupt_image_fails_or_is_skipped(demo_root, tmp_path, caplog):
    data, img_dir = _small_copy(demo_root, tmp_path)
    (img_dir / data["images"][0]["file_name"]).write_bytes(b"\xff\xd8\xff not really a jpeg")
    dataset = get_detection_dataset("corrupt_case", json_file=_write(tmp_path, data), image_root=str(img_dir))
    mapper = DetectionDatasetMapper(is_train=True, image_size=64)
    with pytest.raises(ImageReadError, match="could not be decoded"):
        mapper(dataset[0][0])
    loader = build_detection_train_loader(dataset, mapper, total_batch_size=3, on_bad_image="skip", seed=0)
    with caplog.at_level(logging.WARNING):
        batch = next(iter(loader))
    assert len(batch) == 3 and "Skipping a bad image" in caplog.text


def test_image_size_mismatch_is_reported(demo_root, tmp_path):
    data, img_dir = _small_copy(demo_root, tmp_path)
    data["images"][0]["width"] += 10
    records, _ = load_coco_json(_write(tmp_path, data), str(img_dir))
    with pytest.raises(ImageReadError, match=r"annotation file gives width="):
        DetectionDatasetMapper(is_train=False, image_size=64)(records[0])


def test_boxes_from_masks_equal_torchvision_plus_one():
    """The LSJ's fast box computation equals torchvision's masks_to_boxes with exclusive right /
    bottom edges, including masks touching the borders and an empty one."""
    from torchvision.ops import masks_to_boxes

    from vitdet_bench.data.transforms import _boxes_from_masks

    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(6, 37, 53, generator=g) > 0.995).to(torch.uint8)
    masks[1, 0, 0] = masks[1, 36, 52] = 1
    masks[2] = 0
    masks[3, 10:20, 5] = 1
    ours = _boxes_from_masks(masks)
    ref = masks_to_boxes(masks.bool()).float()
    ref[:, 2:] += 1
    nonempty = masks.flatten(1).amax(1) > 0
    torch.testing.assert_close(ours[nonempty], ref[nonempty], rtol=0, atol=0)
    assert ours[2].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert _boxes_from_masks(torch.zeros(0, 4, 4, dtype=torch.uint8)).shape == (0, 4)
