"""GPU decoding's data path (``imdecode_backend='nvjpeg'``): the workers record crops, flips and resizes on
an EncodedImage; decoding and replaying them (here on the CPU, with OpenCV) gives the images and metadata
of the CPU path."""

import pickle

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from trainer.datasets.transforms.encoded_image import EncodedImage, apply_ops, decode_images
from trainer.registry import MODELS, TRANSFORMS, register_all_modules

register_all_modules()


def photo(h, w, seed=0):
    """A smooth image (what JPEG is made for), BGR uint8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoded")
    paths = []
    for i, (h, w) in enumerate([(60, 80), (75, 50), (64, 64), (40, 90)]):
        path = root / f"{i}.jpg"
        cv2.imwrite(str(path), photo(h, w, i))
        paths.append(str(path))
    png = root / "4.png"
    cv2.imwrite(str(png), photo(50, 70, 4))
    return paths + [str(png)]


def pipeline(backend, *steps):
    return [TRANSFORMS.build(step) for step in (dict(type="LoadImageFromFile", imdecode_backend=backend), *steps,
                                                dict(type="PackInputs"))]


def batch(paths, backend, *steps):
    samples = []
    for i, path in enumerate(paths):
        results = dict(img_path=path, gt_label=i % 2, rng=np.random.default_rng(i + 10))
        for transform in pipeline(backend, *steps):
            results = transform(results)
        samples.append(results)
    return dict(inputs=[s["inputs"] for s in samples], data_samples=[s["data_samples"] for s in samples])


@pytest.mark.parametrize("steps", [
    (dict(type="RandomResizedCrop", scale=32), dict(type="RandomFlip", prob=0.5)),
    (dict(type="ResizeEdge", scale=36), dict(type="CenterCrop", crop_size=32),
     dict(type="RandomFlip", prob=1.0, direction="diagonal")),
    (dict(type="Resize", scale=(40, 30)), dict(type="RandomCrop", crop_size=24),
     dict(type="RandomFlip", prob=1.0, direction="vertical")),
])
def test_deferred_decoding_gives_the_cpu_paths_images(files, steps):
    cpu, deferred = batch(files, "cv2", *steps), batch(files, "nvjpeg", *steps)
    assert all(isinstance(x, EncodedImage) for x in deferred["inputs"])
    for a, b in zip(cpu["data_samples"], deferred["data_samples"]):
        assert a.metainfo == b.metainfo  # shapes, flips, scale factors: the same random choices
    preprocessor = MODELS.build(dict(type="ClsDataPreprocessor", mean=[0, 0, 0], std=[1, 1, 1], to_rgb=True))
    expected, got = preprocessor(cpu)["inputs"], preprocessor(deferred)["inputs"]
    assert got.shape == expected.shape
    difference = (got - expected).abs()
    assert difference.max() <= 2 and difference.mean() < 0.3  # resizing rounds a little differently


def test_channel_order_follows_to_rgb(files):
    data = batch(files[:1], "nvjpeg")
    bgr = MODELS.build(dict(type="ClsDataPreprocessor", to_rgb=False))(data)["inputs"]
    rgb = MODELS.build(dict(type="ClsDataPreprocessor", to_rgb=True))(data)["inputs"]
    image = cv2.imread(files[0])
    assert torch.equal(bgr[0], torch.from_numpy(image).permute(2, 0, 1).float())
    assert torch.equal(rgb[0], bgr[0].flip(0))


def test_jpegs_stay_encoded_and_other_files_travel_as_pixels(files):
    jpeg = EncodedImage.read(open(files[0], "rb").read())
    assert jpeg.encoded and jpeg.shape == (60, 80, 3) and jpeg.data.size == len(open(files[0], "rb").read())
    png = EncodedImage.read(open(files[-1], "rb").read())
    assert not png.encoded and png.shape == (50, 70, 3) and np.array_equal(png.data, cv2.imread(files[-1]))
    with pytest.raises(OSError, match="cannot decode image x.jpg"):
        EncodedImage.read(b"not an image", "x.jpg")


def test_rotated_jpegs_are_decoded_by_the_worker(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(photo(30, 40)[..., ::-1]).save(path, exif=exif)
    image = EncodedImage.read(path.read_bytes())
    assert not image.encoded and image.shape == (40, 30, 3)  # as cv2.imread turns it


def test_slicing_records_crops_and_flips():
    image = EncodedImage(np.zeros(10, np.uint8), 60, 80)
    cropped = image[5:45, 10:70]
    assert cropped.ops == (("crop", 5, 10, 40, 60), ) and cropped.shape == (40, 60, 3)
    assert image[:, ::-1].ops == (("flip", 1), ) and image[::-1].ops == (("flip", 0), )
    assert image[::-1, ::-1].ops == (("flip", 0), ("flip", 1))
    assert image[:, :].ops == () and image[0:100, 0:100].ops == ()  # the whole image: nothing to do
    resized = cropped.resized((32, 24), "bilinear")
    assert resized.shape == (24, 32, 3) and resized.ops[-1] == ("resize", 24, 32, "bilinear")
    assert pickle.loads(pickle.dumps(resized)).ops == resized.ops
    for key in ((slice(0, 10, 2), ), (0, ), (slice(None), slice(None), 0)):
        with pytest.raises(TypeError, match="only crops"):
            image[key]
    with pytest.raises(ValueError, match="lanczos"):
        image.resized((10, 10), "lanczos")


def test_replayed_operations_match_numpy():
    pixels = photo(20, 30)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    ops = (("crop", 2, 3, 10, 12), ("flip", 1), ("flip", 0))
    expected = pixels[2:12, 3:15][:, ::-1][::-1]
    assert torch.equal(apply_ops(tensor, ops), torch.from_numpy(expected.copy()).permute(2, 0, 1))


def test_decode_images_returns_rgb_on_the_device(files):
    images = [EncodedImage.read(open(path, "rb").read()) for path in files[:2]]
    decoded = decode_images(images, "cpu")
    assert [tuple(x.shape) for x in decoded] == [(3, 60, 80), (3, 75, 50)]
    assert torch.equal(decoded[0], torch.from_numpy(cv2.imread(files[0])[..., ::-1].copy()).permute(2, 0, 1))


def test_padding_and_float_loading_are_refused():
    with pytest.raises(ValueError, match="nvjpeg"):
        TRANSFORMS.build(dict(type="LoadImageFromFile", imdecode_backend="nvjpeg", to_float32=True))
    pad = TRANSFORMS.build(dict(type="RandomCrop", crop_size=8, padding=2))
    with pytest.raises(TypeError, match="padding cannot be used with GPU decoding"):
        pad(dict(img=EncodedImage(np.zeros(10, np.uint8), 20, 20)))
