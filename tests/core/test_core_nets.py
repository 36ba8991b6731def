"""The assignment's network layer for layer, the UNet, the denoiser wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vdm.denoiser import Denoiser, Oracle
from vdm.diffusion import eps_from_x0, q_sample
from vdm.nets import AssignmentNet, UNet, build_net, count_parameters, summary
from vdm.schedule import Schedule

ASSIGNMENT_PARAMS = 1_547_337  # the count the assignment prints for its network


@pytest.mark.parametrize("T", [20, 500])
def test_assignment_net_parameter_count(T):
    net = AssignmentNet(T)
    assert count_parameters(net) == ASSIGNMENT_PARAMS
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == ASSIGNMENT_PARAMS


def test_assignment_net_layers():
    net = AssignmentNet(100)
    downs = [net.down1, net.down2, net.down3, net.down4]
    ups = [net.up1, net.up2, net.up3, net.up4]
    in_ch = 4  # x_t's 3 channels and the constant t plane
    for block, out_ch in zip(downs, (32, 64, 128, 256)):
        conv, bn, act = block
        assert isinstance(conv, nn.Conv2d) and conv.stride == (2, 2) and conv.in_channels == in_ch
        assert conv.out_channels == out_ch
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU)
        in_ch = out_ch
    # up1 takes the bottleneck; up2..up4 the concatenation with the encoder feature of their size
    for block, (i, o) in zip(ups, ((256, 128), (256, 64), (128, 32), (64, 3))):
        conv = block[0]
        assert isinstance(conv, nn.ConvTranspose2d) and conv.stride == (2, 2)
        assert (conv.in_channels, conv.out_channels) == (i, o)
    assert isinstance(net.up4[-1], nn.Tanh)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 4
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == 4


def test_assignment_net_forward_plane_skips_and_range():
    T = 50
    net = AssignmentNet(T).eval()
    seen = {}

    def keep(name):
        def hook(mod, args, out=None):
            seen[name] = (args[0].detach(), None if out is None else out.detach())
        return hook

    for name in ("down1", "down2", "down3", "up2", "up3", "up4"):
        getattr(net, name).register_forward_hook(keep(name))
    x = torch.randn(3, 3, 32, 32) * 50  # far outside [-1, 1]: the output must still be inside
    t = torch.tensor([1, 25, 50])
    with torch.no_grad():
        y = net(x, t)
    assert y.shape == x.shape
    assert float(y.abs().max()) <= 1.0
    inp = seen["down1"][0]
    assert inp.shape == (3, 4, 32, 32)
    torch.testing.assert_close(inp[:, :3], x)
    for i, tt in enumerate(t.tolist()):
        assert torch.all(inp[i, 3] == tt / T * 2 - 1)
    # skip concatenations: the second half of up_k's input is the encoder output of the same size
    for up, down in (("up2", "down3"), ("up3", "down2"), ("up4", "down1")):
        u_in, d_out = seen[up][0], seen[down][1]
        c = d_out.shape[1]
        assert u_in.shape[1] == 2 * c
        torch.testing.assert_close(u_in[:, c:], d_out)
    # t matters
    with torch.no_grad():
        y2 = net(x, torch.tensor([50, 1, 25]))
    assert not torch.allclose(y, y2)


def test_unet_shape_and_time_dependence():
    net = UNet(100).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = net(x, torch.tensor([1, 100]))
        y_other = net(x, torch.tensor([100, 1]))
    assert y.shape == x.shape
    assert not torch.allclose(y, y_other)
    assert count_parameters(net) > 0


def test_build_net_and_summary():
    assert isinstance(build_net("assignment", 10), AssignmentNet)
    assert isinstance(build_net("unet", 10), UNet)
    small = build_net("unet-small", 10)  # the help's figures: 0.62M and 0.16M parameters
    assert isinstance(small, UNet) and small.ch == 16 and round(count_parameters(small), -4) == 160_000
    assert round(count_parameters(build_net("unet", 10)), -4) == 620_000
    with pytest.raises(ValueError, match="'resnet'"):
        build_net("resnet", 10)
    text = summary(AssignmentNet(10))
    assert text.splitlines()[-1] == f"Total params: {ASSIGNMENT_PARAMS:,}"
    unet = UNet(10)
    assert summary(unet).splitlines()[-1] == f"Total params: {count_parameters(unet):,}"
    # every parameterised layer is listed with its own count, and they add up
    rows = [ln.split() for ln in text.splitlines()[2:-2]]
    assert sum(int(r[-1].replace(",", "")) for r in rows) == ASSIGNMENT_PARAMS


def test_denoiser_eps_prediction_gives_x0():
    s = Schedule.constant(0.95, 30)
    x0 = torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1
    t = torch.tensor([1, 5, 17, 30])
    x_t = q_sample(s, x0, t)

    class TrueEps(nn.Module):
        def forward(self, x, tt):
            return eps_from_x0(s, x, tt, x0)

    den = Denoiser(TrueEps(), s, prediction="eps")
    torch.testing.assert_close(den(x_t, t), x0)
    torch.testing.assert_close(Denoiser(TrueEps(), s, "x0")(x_t, t), eps_from_x0(s, x_t, t, x0))
    with pytest.raises(ValueError, match="'v'"):
        Denoiser(TrueEps(), s, prediction="v")
    torch.testing.assert_close(Oracle(x0)(x_t, 3), x0)
    with pytest.raises(ValueError):
        Oracle(x0)(x_t[:2], 3)
