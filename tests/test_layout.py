"""channels_last execution (the layout torch runs fastest on CPU) changes no output."""
import torch

from supernet.blocks import fuse_weight_norm
from supernet.config import ModelConfig
from supernet.layout import ChannelsLast, as_channels_last
from supernet.model import build_path_net


def test_channels_last_wrapper_keeps_outputs_and_layout():
    torch.manual_seed(0)
    net = fuse_weight_norm(build_path_net(ModelConfig(n_cells=2, n_feats=8), 2, ("wdsr_a", "wdsr_b"))).eval()
    net.tail.weight.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 20, 24)
    ref = net(x)
    wrapped = ChannelsLast(net)
    assert net.head.weight.is_contiguous(memory_format=torch.channels_last)
    out = wrapped(x)  # an NCHW input is converted inside
    assert torch.allclose(out, ref, atol=1e-5)
    traced = torch.jit.trace(wrapped, x)
    assert torch.allclose(traced(x), ref, atol=1e-5)
    assert as_channels_last(torch.rand(3, 4)).shape == (3, 4)
