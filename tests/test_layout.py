"""channels_last execution (the layout torch runs fastest on CPU) changes no output."""
import torch

from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import ModelConfig
from srnas.supernet.layout import ChannelsLast, as_channels_last
from srnas.supernet.model import build_path_net


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


def test_torch_cpu_cl_backend_times_in_channels_last_and_plain_torch_cpu_does_not():
    from srnas.latency.timing import make_runner

    plain, cl = torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(4, 8, 3, padding=1)
    x = torch.rand(1, 4, 10, 10)
    make_runner(plain, [x], "torch-cpu", 1)()
    make_runner(cl, [x], "torch-cpu-cl", 1)()
    assert plain.weight.is_contiguous() and not plain.weight.is_contiguous(memory_format=torch.channels_last)
    assert cl.weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_export_matches(tmp_path):
    from srnas.pruning import export_model

    torch.manual_seed(0)
    net = fuse_weight_norm(build_path_net(ModelConfig(n_cells=1, n_feats=8), 2, ("wdsr_b",))).eval()
    net.tail.weight.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 12, 16)
    ref = net(x)
    files = export_model(net, tmp_path, lr_hw=(12, 16), channels_last=True)
    assert torch.allclose(torch.jit.load(files["torchscript"])(x), ref, atol=1e-5)
