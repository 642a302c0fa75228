"""Hugging Face data: a DatasetDict from local disk, and any flwr-datasets partitioner."""

from __future__ import annotations

import json
import pickle
from functools import partial

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from conftest import make_config
from fedsim.data.huggingface import HuggingFaceDiskSource
from fedsim.data.partitioners import FlwrDatasetsPartitioner
from fedsim.errors import ConfigError, DataError
from fedsim.experiment import build_experiment, run_experiment

LABELS = np.repeat(np.arange(4), 50)  # 200 examples, 4 balanced classes


def images(n: int, rng: np.random.Generator, mode: str = "L", size: int = 8) -> tuple[list, list[int]]:
    """``n`` small images whose brightness pattern depends on the class (learnable)."""
    labels = [k % 4 for k in range(n)]
    pictures = []
    for label in labels:
        pixels = rng.integers(0, 60, size=(size, size)).astype(np.uint8)
        pixels[2 * label:2 * label + 2, :] += 180  # class k: bright rows 2k, 2k+1
        pictures.append(PILImage.fromarray(pixels if mode == "L" else np.stack([pixels] * 3, axis=-1), mode))
    return pictures, labels


def save_image_dataset(folder, n_train: int = 40, n_test: int = 20, mode: str = "L", class_label: bool = True):
    rng = np.random.default_rng(0)
    label_feature = ClassLabel(num_classes=4) if class_label else Value("int64")
    features = Features({"image": Image(), "label": label_feature})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pictures, labels = images(n, rng, mode)
        splits[split] = Dataset.from_dict({"image": pictures, "label": labels}, features=features)
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def test_grayscale_images_load_like_the_idx_source(tmp_path):
    source = HuggingFaceDiskSource(str(save_image_dataset(tmp_path / "hf")))
    data = pickle.loads(pickle.dumps(source)).load()  # picklable (the engines ship it to workers)
    assert data.x_train.shape == (40, 1, 8, 8) and data.x_test.shape == (20, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.num_classes == 4 and data.y_train.tolist() == [k % 4 for k in range(40)]
    assert abs(float(data.x_train.mean())) < 1e-4 and float(data.x_train.std()) == pytest.approx(1.0, abs=1e-3)


def test_rgb_images_are_channels_first_and_num_classes_is_inferred(tmp_path):
    folder = save_image_dataset(tmp_path / "rgb", mode="RGB", class_label=False)
    data = HuggingFaceDiskSource(str(folder)).load()
    assert data.x_train.shape == (40, 3, 8, 8) and data.num_classes == 4


def test_array_columns_and_other_names(tmp_path):
    rng = np.random.default_rng(1)
    train = Dataset.from_dict({"pixels": rng.integers(0, 255, (12, 5, 5)).tolist(), "y": [0, 1, 2] * 4})
    test = Dataset.from_dict({"pixels": rng.integers(0, 255, (6, 5, 5)).tolist(), "y": [0, 1, 2] * 2})
    DatasetDict({"training": train, "validation": test}).save_to_disk(str(tmp_path / "arr"))
    data = HuggingFaceDiskSource(str(tmp_path / "arr"), image_column="pixels", label_column="y",
                                 train_split="training", test_split="validation").load()
    assert data.x_train.shape == (12, 1, 5, 5) and data.num_classes == 3


@pytest.mark.parametrize("settings, message", [
    ({"path": "{tmp}/nowhere"}, "dataset.path={tmp}/nowhere: no such folder"),
    ({"test_split": "validation"}, "dataset.test_split=validation: no such split"),
    ({"image_column": "img"}, "dataset.image_column=img: no such column"),
    ({"label_column": "target"}, "dataset.label_column=target: no such column"),
    ({"num_classes": 2}, "must lie in [0, 2), found 0..3"),
])
def test_bad_settings_are_one_line_data_errors(tmp_path, settings, message):
    folder = save_image_dataset(tmp_path / "hf")
    settings = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in settings.items()}
    with pytest.raises(DataError) as info:
        HuggingFaceDiskSource(**{"path": str(folder), **settings}).load()
    assert message.format(tmp=tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_a_single_dataset_or_a_folder_of_something_else_is_refused(tmp_path):
    Dataset.from_dict({"image": [[1, 2]], "label": [0]}).save_to_disk(str(tmp_path / "single"))
    with pytest.raises(DataError, match="single Dataset, not a DatasetDict"):
        HuggingFaceDiskSource(str(tmp_path / "single")).load()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot load it with datasets.load_from_disk"):
        HuggingFaceDiskSource(str(tmp_path / "other")).load()


def test_two_round_simulation_on_a_dataset_from_disk(tmp_path):
    folder = save_image_dataset(tmp_path / "hf")
    config = make_config(["dataset=huggingface", f"dataset.path={folder}", "partitioner=iid", "num_clients=4",
                          "clients_per_round=2", "num_rounds=2", "progress=false", "train.epochs=1",
                          "train.batch_size=8"])
    summary = run_experiment(build_experiment(config), tmp_path / "run")
    assert summary["rounds_run"] == 2 and summary["final_accuracy"] is not None
    partition = json.loads((tmp_path / "run" / "partition.json").read_text())
    assert sum(partition["sizes"]) == 40


# --- flwr-datasets partitioners through the adapter -------------------------------------------


def fp():
    import flwr_datasets.partitioner

    return flwr_datasets.partitioner


def flwr(name: str, **settings):
    return FlwrDatasetsPartitioner(partial(getattr(fp(), name), **settings))


def split(partitioner, seed: int = 0, num_clients: int = 5):
    return partitioner.split(LABELS, num_clients, np.random.default_rng(seed)).client_indices


@pytest.mark.parametrize("name, settings", [
    ("IidPartitioner", {}),
    ("DirichletPartitioner", {"partition_by": "label", "alpha": 0.5, "min_partition_size": 2}),
    ("DirichletPartitioner", {"partition_by": "label", "alpha": 0.5, "min_partition_size": 2, "seed": None}),
])
def test_any_flwr_partitioner_seeded_by_the_run_or_not(name, settings):
    parts = split(flwr(name, **settings))
    assert len(parts) == 5 and min(len(p) for p in parts) > 0
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(LABELS)))  # every example once
    again = split(flwr(name, **settings))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))  # same run seed, same partition
    other = split(flwr(name, **settings), seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))  # the run seed decides


def test_flwr_iid_partitions_are_shuffled_not_label_sorted_blocks():
    parts = split(flwr("IidPartitioner"))
    assert all(len(np.unique(LABELS[p])) == 4 for p in parts)
    unshuffled = split(FlwrDatasetsPartitioner(partial(fp().IidPartitioner), shuffle=False))
    assert np.array_equal(unshuffled[0], np.arange(40))  # flwr's IidPartitioner cuts the table in order


def test_a_seed_fixed_in_the_config_is_kept():
    fixed = dict(partition_by="label", alpha=0.5, min_partition_size=2, seed=3)
    a = split(FlwrDatasetsPartitioner(partial(fp().DirichletPartitioner, **fixed), shuffle=False), seed=0)
    b = split(FlwrDatasetsPartitioner(partial(fp().DirichletPartitioner, **fixed), shuffle=False), seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.filterwarnings("ignore:The specified min_partition_size:UserWarning")
def test_flwr_partitioner_errors_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="partitioner: flwr-datasets DirichletPartitioner: ") as info:
        split(flwr("DirichletPartitioner", partition_by="label", alpha=0.5, min_partition_size=100))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("overrides", [
    ["partitioner=flwr_dirichlet"],
    ["partitioner=flwr_dirichlet", "partitioner.partitioner.seed=5"],
    # seed: null stays (Hydra cannot delete a null key); the adapter drops it for a seedless partitioner
    ["partitioner=flwr_dirichlet", "partitioner.partitioner._target_=flwr_datasets.partitioner.IidPartitioner",
     "~partitioner.partitioner.alpha", "~partitioner.partitioner.partition_by",
     "~partitioner.partitioner.min_partition_size", "~partitioner.partitioner.self_balancing"],
])
def test_flwr_partitioners_from_the_config(overrides):
    config = make_config(["dataset=synthetic", "num_clients=6", "clients_per_round=3"] + overrides)
    experiment = build_experiment(config)
    assert experiment.partitioning.num_clients == 6 and experiment.partitioning.sizes.sum() == 1000


def test_mixed_image_sizes_are_refused_and_mixed_modes_converted_with_image_mode(tmp_path):
    gray = PILImage.fromarray(np.zeros((8, 8), np.uint8))
    features = Features({"image": Image(), "label": ClassLabel(num_classes=2)})

    def save(folder, train_images):
        DatasetDict({"train": Dataset.from_dict({"image": train_images, "label": [0, 1]}, features=features),
                     "test": Dataset.from_dict({"image": [gray, gray], "label": [0, 1]}, features=features)}
                    ).save_to_disk(str(folder))
        return str(folder)

    sizes = save(tmp_path / "sizes", [gray, PILImage.fromarray(np.zeros((9, 9), np.uint8))])
    with pytest.raises(DataError, match="inputs differ in shape"):
        HuggingFaceDiskSource(sizes).load()
    modes = save(tmp_path / "modes", [gray, PILImage.fromarray(np.zeros((8, 8, 3), np.uint8), "RGB")])
    with pytest.raises(DataError, match="image_mode"):
        HuggingFaceDiskSource(modes).load()
    assert HuggingFaceDiskSource(modes, image_mode="L").load().x_train.shape == (2, 1, 8, 8)
