"""Embedded image sets and resumable image batches."""

import gzip

import pytest
import torch

from formers.data.images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_STATS,
    Augment,
    ImageBatches,
    ImageSet,
    channel_stats,
    epoch_indices,
    eval_image_batches,
    load_digits,
    load_fashion_mnist,
    load_image_dataset,
)
from formers.errors import CheckpointError, DataError


@pytest.fixture(scope="module")
def fashion_train():
    return load_fashion_mnist("train")


def test_fashion_mnist_splits_shapes_and_balanced_labels(fashion_train):
    test = load_fashion_mnist("test")
    assert fashion_train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert fashion_train.classes == FASHION_MNIST_CLASSES == test.classes
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))  # the test split is balanced
    assert torch.equal(fashion_train.labels.bincount(), torch.full((10,), 6000))


def test_fashion_mnist_stats_are_the_training_splits(fashion_train):
    mean, std = channel_stats(fashion_train.images)
    # the constant was computed by this function; only the last bits of float64 may differ
    assert mean == pytest.approx(FASHION_MNIST_STATS[0], rel=1e-12)
    assert std == pytest.approx(FASHION_MNIST_STATS[1], rel=1e-12)
    x = fashion_train.normalize(fashion_train.images[:5000])
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # a 5k sample is near (0, 1)


def test_channel_stats_match_float64_reference():
    images = torch.randint(0, 256, (7, 3, 5, 4), dtype=torch.uint8)
    mean, std = channel_stats(images)
    ref = images.transpose(0, 1).reshape(3, -1).double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), ref.mean(1))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), ref.std(1))


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)


def test_truncated_idx_file_is_refused(tmp_path):
    for prefix, shape in (("t10k-images-idx3-ubyte", (3, 28, 28)), ("t10k-labels-idx1-ubyte", (3,))):
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        with gzip.open(tmp_path / f"{prefix}.gz", "wb") as f:
            f.write(header + bytes(10))  # far fewer bytes than the header promises
    with pytest.raises(DataError, match="truncated"):
        load_fashion_mnist("test", root=tmp_path)


def test_bad_split_and_unknown_dataset_are_refused():
    with pytest.raises(DataError, match="split='val'"):
        load_fashion_mnist("val")
    with pytest.raises(DataError, match="not known"):
        load_image_dataset("cifar", "train")


def test_digits_split_is_disjoint_and_seeded():
    train, test = load_digits("train"), load_digits("test")
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert int(train.images.max()) == 255  # 16 (the source's maximum) scales to 255
    again = load_digits("train")
    assert torch.equal(train.images, again.images)
    def keys(data):
        return [bytes(x.flatten().tolist()) + bytes([int(y)]) for x, y in zip(data.images, data.labels, strict=True)]

    overlap = len(set(keys(test)) & set(keys(train)))
    assert overlap < 0.02 * len(test)  # only the dataset's own duplicate digits may appear in both


def test_image_set_refuses_inconsistent_parts():
    with pytest.raises(DataError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ("a",), (0.0,), (1.0,))
    with pytest.raises(DataError, match="labels must lie"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), ("a", "b"), (0.0,), (1.0,))


def test_epoch_indices_visit_every_item_once_per_epoch():
    n, b = 10, 4
    seen = torch.cat([epoch_indices(n, b, seed=3, step=s) for s in range(5)])  # 20 = two epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert not torch.equal(seen[:10], seen[10:])  # each epoch its own order


def test_batches_resume_exactly_and_shard_by_rank():
    data = load_digits("train")
    source = ImageBatches(data, batch_size=8, seed=1, augment=Augment(pad=1))
    first = [source.next_batch() for _ in range(3)]
    resumed = ImageBatches(data, batch_size=8, seed=1, augment=Augment(pad=1))
    resumed.load_state_dict({"step": 2})
    assert torch.equal(resumed.next_batch()["pixel_values"], first[2]["pixel_values"])
    whole = ImageBatches(data, batch_size=8, seed=1).next_batch()
    halves = [ImageBatches(data, batch_size=4, seed=1, rank=r, world_size=2).next_batch() for r in (0, 1)]
    assert torch.equal(torch.cat([h["labels"] for h in halves]), whole["labels"])
    with pytest.raises(CheckpointError):
        resumed.load_state_dict({"step": -1})


def test_augment_translates_and_flips_without_changing_content():
    images = torch.zeros(64, 1, 6, 6, dtype=torch.uint8)
    images[:, :, 2:4, 2:4] = 200  # a centred square
    out = Augment(pad=2, flip=True)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out.sum((1, 2, 3)), images.sum((1, 2, 3)))  # a shift of <= 2 keeps the square inside
    assert len({tuple(o.nonzero()[0].tolist()) for o in out}) > 5  # and it lands at many offsets
    mirrored = Augment(flip=True)(torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).expand(32, 1, 1, 4),
                                  torch.Generator().manual_seed(0))
    flipped = (mirrored[:, 0, 0, 0] == 3).sum().item()
    assert 4 < flipped < 28  # about half the rows are mirrored


def test_eval_batches_cover_the_set_in_order():
    data = load_digits("test")
    batches = eval_image_batches(data, batch_size=100)
    assert sum(len(b["labels"]) for b in batches) == len(data)
    assert torch.equal(torch.cat([b["labels"] for b in batches]), data.labels)
    assert len(eval_image_batches(data, batch_size=100, max_batches=2)) == 2
