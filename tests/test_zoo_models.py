"""The zoo's models: shapes, definitions, Y-only handling, weights round trip, bicubic baseline."""
from __future__ import annotations

import pytest
import torch

from srnas.experiments import zoo
from srnas.experiments.zoo.common import rgb_to_ycbcr, ycbcr_to_rgb
from srnas.experiments.zoo.edgesr import ESRCNN, ESRTM, ESRTR, ESRMax
from srnas.supernet.errors import UserError

torch.set_num_threads(1)


@pytest.mark.parametrize("name", zoo.names())
def test_every_model_maps_rgb_to_rgb_at_scale(name):
    m = zoo.build(name, 2).eval()
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        y = m(x)
    assert y.shape == (1, 3, 40, 56)
    assert torch.isfinite(y).all()


def test_y_only_flags_match_the_papers():
    y_only = {n for n in zoo.names() if zoo.entry(n).y_only}
    assert y_only == {"fsrcnn", "espcn", "esr_max", "esr_tm", "esr_tr", "esr_cnn"}


def test_ycbcr_round_trip():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-4)


def test_esr_max_is_max_over_channels_and_starts_as_nearest():
    m = ESRMax(2, k=3, c=4)
    with torch.no_grad():
        m.filter.weight.zero_()
        m.filter.weight[:, 0, 1, 1] = 1.0  # every channel copies the centre pixel
    y = torch.rand(1, 1, 5, 6)
    out = m(y)
    assert torch.allclose(out, torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest"))


def test_esr_tm_is_softmax_weighted_sum():
    m = ESRTM(2, k=3, c=2)
    y = torch.rand(1, 1, 4, 4)
    f = m.shuffle(m.filter(y))
    ref = (f[:, :2] * torch.softmax(f[:, 2:], 1)).sum(1, keepdim=True)
    assert torch.allclose(m(y), ref)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edge_sr_before_the_shuffle_equals_the_papers_order(scale):
    """Every edge-SR model reduces over its C channels before the shuffle: the reference code's numbers exactly."""
    y = torch.rand(2, 1, 5, 7)
    torch.manual_seed(0)
    for m in (ESRMax(scale, k=3, c=4), ESRTM(scale, k=3, c=3), ESRTR(scale, k=3, c=3), ESRCNN(scale)):
        with torch.no_grad():
            for p in m.parameters():
                p.normal_()
            f = m.shuffle(m.filter(y))      # the paper's order: shuffle, then per output pixel over C
            c = getattr(m, "c", None)
            if isinstance(m, ESRMax):
                ref = f.amax(1, keepdim=True)
            elif isinstance(m, ESRTR):
                ref = (f[:, :c] * torch.softmax(f[:, c:2 * c] * f[:, 2 * c:], 1)).sum(1, keepdim=True)
            elif isinstance(m, ESRCNN):
                ref = (f[:, :c] * torch.softmax(f[:, c:] ** 2, 1)).sum(1, keepdim=True)
            else:
                ref = (f[:, :c] * torch.softmax(f[:, c:], 1)).sum(1, keepdim=True)
            out = m(y)
        assert out.shape == (2, 1, 5 * scale, 7 * scale)
        assert torch.allclose(out, ref, atol=1e-5), type(m).__name__


def test_fsrcnn_parameter_count_matches_paper_order():
    n = sum(p.numel() for p in zoo.build("fsrcnn", 2).parameters())
    assert 12_000 < n < 13_500  # FSRCNN(56,12,4): ~12.6K weights + biases/PReLU


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(UserError, match="srnas zoo train espcn"):
        zoo.load("espcn", 2, weights_dir=tmp_path)


def test_weights_round_trip_through_fp16_state(tmp_path):
    m = zoo.build("wdsr_b", 2)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.nn.init.normal_(m.tail.parametrizations.weight.original0, std=0.01)
        ref = m(x)
    torch.save({"state": zoo.export_state(m)}, zoo.weights_path("wdsr_b", 2, tmp_path))
    loaded = zoo.load("wdsr_b", 2, weights_dir=tmp_path)
    with torch.no_grad():
        assert (loaded(x) - ref).abs().max() < 5e-3  # fp16 storage


def test_unknown_model_lists_the_zoo():
    with pytest.raises(UserError, match="fsrcnn"):
        zoo.build("srcnn9000", 2)


def test_bicubic_matches_literature_on_set5():
    from conftest import need_benchmarks
    from srnas.supernet.data import load_images, make_pairs
    from srnas.supernet.evaluate import evaluate

    need_benchmarks()
    pairs = make_pairs(load_images("Set5", "val"), 2)
    psnr = evaluate(zoo.build("bicubic", 2), pairs, 2, ssim=False)["psnr"]
    assert abs(psnr - 33.66) < 0.1
