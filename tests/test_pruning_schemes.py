"""Pruning schemes remove the asked share of weights in the asked structure."""
import pytest
import torch

from srnas.pruning import SCHEMES
from srnas.pruning.schemes import check_rate
from srnas.supernet.config import PruningConfig
from srnas.supernet.errors import UserError
from srnas.supernet.widths import kept_in_channels, kept_out_channels

torch.set_num_threads(1)
CFG = PruningConfig()


@pytest.mark.parametrize("scheme", ["unstructured", "filter", "block", "pattern"])
@pytest.mark.parametrize("rate", [0.25, 0.75])
def test_rate_is_met(scheme, rate):
    w = torch.randn(32, 24, 3, 3)
    m = SCHEMES[scheme].mask(w, rate, CFG)
    removed = 1 - m.mean().item()
    assert removed >= rate - 0.05
    if scheme != "pattern" or rate > 5 / 9:
        assert removed <= rate + 0.05


def test_structures():
    w = torch.randn(32, 24, 3, 3)
    f = SCHEMES["filter"].mask(w, 0.5, CFG)
    assert set(f.flatten(1).mean(1).tolist()) == {0.0, 1.0}          # whole filters
    ft = SCHEMES["filter"].mask(w, 0.5, CFG, tied_out=True)
    assert set(ft.transpose(0, 1).flatten(1).mean(1).tolist()) == {0.0, 1.0}  # whole input channels
    b = SCHEMES["block"].mask(w, 0.5, CFG)
    r = CFG.block_size[0]
    for s in range(0, 32, r):                                          # same columns across a row-block
        assert torch.equal(b[s:s + r], b[s:s + 1].expand_as(b[s:s + r]))
    p = SCHEMES["pattern"].mask(w, 0.75, CFG)
    taps = p.flatten(2).sum(-1)
    assert set(taps.unique().tolist()) <= {0.0, float(CFG.pattern_taps)}
    pats = {tuple(k.tolist()) for k in p.flatten(0, 1).flatten(1) if k.sum() > 0}
    assert len(pats) <= CFG.n_patterns


def test_magnitude_keeps_largest_filter():
    w = torch.randn(8, 4, 3, 3) * 0.01
    w[3] *= 1000
    assert SCHEMES["filter"].mask(w, 0.75, CFG)[3].min() == 1


def test_kept_channels():
    """Only filter pruning changes a conv's own widths: outputs when untied, inputs when tied to an add."""
    for scheme in ["none", "unstructured", "block", "pattern"]:
        assert kept_out_channels(32, scheme, 0.5) == 32 and kept_in_channels(16, scheme, 0.5, tied_out=True) == 16
    assert kept_out_channels(32, "filter", 0.5) == 16
    assert kept_in_channels(16, "filter", 0.5, tied_out=True) == 8
    assert kept_out_channels(32, "filter", 0.5, tied_out=True) == 32 and kept_in_channels(16, "filter", 0.5) == 16
    # the filter mask keeps exactly that many filters (or input channels)
    w = torch.randn(32, 16, 3, 3)
    filters = SCHEMES["filter"].mask(w, 0.5, CFG)
    assert int((filters.flatten(1).sum(1) > 0).sum()) == kept_out_channels(32, "filter", 0.5)
    tied = SCHEMES["filter"].mask(w, 0.5, CFG, tied_out=True)
    assert int((tied.transpose(0, 1).flatten(1).sum(1) > 0).sum()) == kept_in_channels(16, "filter", 0.5, tied_out=True)


def test_bad_input():
    with pytest.raises(UserError, match="unknown pruning scheme"):
        check_rate("nope", 0.5)
    with pytest.raises(UserError, match="outside"):
        check_rate("filter", 1.5)
