"""Each step of ../shared/notes/esdnet-architecture.md, recomputed independently with plain torch ops from the
same weights and compared with the ESDNet modules (small preset, eval mode, random running statistics)."""
import math

import pytest
import torch
import torch.nn.functional as F

import esdnet
from esdnet.model import V_THRESHOLD

T = 4


def lif_reference(x_seq: torch.Tensor, v_th: float = V_THRESHOLD, tau: float = 2.0) -> torch.Tensor:
    """LIF with decay_input=False and hard reset to 0: H = V - V / tau + X; S = H >= v_th; V = H (1 - S)."""
    v = torch.zeros_like(x_seq[0])
    spikes = []
    for x in x_seq:
        h = v - v / tau + x
        s = (h >= v_th).to(x.dtype)
        v = h * (1 - s)
        spikes.append(s)
    return torch.stack(spikes)


def conv_reference(x_seq: torch.Tensor, conv) -> torch.Tensor:
    return torch.stack([F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding) for x in x_seq])


def bn_reference(x_seq: torch.Tensor, bn) -> torch.Tensor:
    shape = (1, 1, -1, 1, 1)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x_seq - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def attention_reference(x_seq: torch.Tensor, attn) -> torch.Tensor:
    """Multi-dimensional attention: temporal, channel, spatial gates applied in turn, then ReLU."""
    def mlp(seq, v):  # v: [N, K]; the shared MLP is two bias-free 1x1x1 Conv3d with ReLU between
        w1 = seq[0].weight.flatten(1)
        w2 = seq[2].weight.flatten(1)
        return F.relu(v @ w1.T) @ w2.T

    x = x_seq.transpose(0, 1)  # [N, T, C, H, W]
    n, t, c = x.shape[:3]
    ta = attn.ta.sharedMLP
    score_t = torch.sigmoid(mlp(ta, x.mean(dim=(2, 3, 4))) + mlp(ta, x.amax(dim=(2, 3, 4))))
    x = x * score_t.view(n, t, 1, 1, 1)
    ca = attn.ca.sharedMLP
    score_c = torch.sigmoid(mlp(ca, x.mean(dim=(1, 3, 4))) + mlp(ca, x.amax(dim=(1, 3, 4))))
    x = x * score_c.view(n, 1, c, 1, 1)
    flat = x.flatten(1, 2)
    pooled = torch.cat([flat.mean(1, keepdim=True), flat.amax(1, keepdim=True)], dim=1)
    score_s = torch.sigmoid(F.conv2d(pooled, attn.sa.conv.weight, padding=1))
    x = x * score_s.unsqueeze(1)
    return F.relu(x).transpose(0, 1)


def block_reference(x_seq: torch.Tensor, block) -> torch.Tensor:
    r = block.residual
    residual = bn_reference(conv_reference(lif_reference(x_seq), r[1]), r[2])
    residual = bn_reference(conv_reference(lif_reference(residual), r[4]), r[5])
    shortcut = bn_reference(conv_reference(x_seq, block.shortcut[0]), block.shortcut[1])
    return attention_reference(residual + shortcut, block.attn) + x_seq


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = esdnet.build_model("small")
    with torch.no_grad():  # random running statistics and affine terms, so batch norm is not the identity
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.3)
    return net.eval()


def assert_close_spiking(actual, expected, atol=1e-5):
    # Spiking paths are discontinuous; a neuron sitting on its threshold could flip under float reordering,
    # so require nearly all elements to agree to atol and none to disagree wildly.
    close = torch.isclose(actual, expected, atol=atol, rtol=1e-5)
    assert close.float().mean() > 0.999, f"only {close.float().mean():.5f} of elements agree"


def test_lif_configuration(model):
    lif = model.encoder_level1[0].residual[0]
    assert (lif.tau, lif.v_threshold, lif.v_reset, lif.decay_input) == (2.0, 0.15, 0.0, False)
    bn1, bn2 = model.encoder_level1[0].residual[2], model.encoder_level1[0].residual[5]
    assert bn1.alpha == pytest.approx(1 / math.sqrt(2)) and bn1.v_th == pytest.approx(0.15)
    assert bn2.v_th == pytest.approx(0.15 * 0.2)


def test_lif_neuron_matches_reference(model):
    lif = model.encoder_level1[0].residual[0]
    x = torch.randn(T, 2, 16, 8, 8) * 0.2
    with torch.no_grad():
        out = lif(x)
    lif.reset()
    assert torch.equal(out, lif_reference(x))
    assert 0.05 < out.mean() < 0.6  # the input really makes it fire, and not everywhere


def test_patch_embed_is_conv_of_repeated_image(model):
    image = torch.rand(2, 3, 16, 16)
    x = image.unsqueeze(0).repeat(T, 1, 1, 1, 1)
    with torch.no_grad():
        out = model.patch_embed(x)
    expected = F.conv2d(image, model.patch_embed.proj.weight, padding=1)
    for t in range(T):
        torch.testing.assert_close(out[t], expected)


def test_residual_block_matches_reference(model):
    block = model.encoder_level1[0]
    x = torch.randn(T, 2, 16, 12, 12) * 0.5
    with torch.no_grad():
        out = block(x)
        expected = block_reference(x, block)
    model.apply(lambda m: m.reset() if hasattr(m, "reset") and hasattr(m, "v") else None)
    assert_close_spiking(out, expected)


def test_down_sampling_matches_reference(model):
    seq = model.down1_2.maxpool_conv
    x = torch.randn(T, 1, 16, 12, 12) * 0.5
    with torch.no_grad():
        out = model.down1_2(x)
        expected = bn_reference(conv_reference(lif_reference(x), seq[1]), seq[2])
    seq[0].reset()
    assert out.shape == (T, 1, 32, 6, 6)
    assert_close_spiking(out, expected)


def test_up_sampling_matches_reference(model):
    up = model.up3_2
    x = torch.randn(T, 1, 64, 5, 7) * 0.5
    with torch.no_grad():
        out = up(x)
        upsampled = torch.stack([F.interpolate(x[t], scale_factor=2, mode="bilinear", align_corners=False)
                                 for t in range(T)])
        expected = bn_reference(conv_reference(lif_reference(upsampled), up.up[1]), up.up[2])
    up.up[0].reset()
    assert out.shape == (T, 1, 32, 10, 14)
    assert_close_spiking(out, expected)


def test_refinement_block_matches_reference(model):
    ref = model.refinement
    x = torch.randn(2, 32, 9, 9)
    with torch.no_grad():
        a = torch.sigmoid(F.conv2d(F.relu(F.conv2d(x.mean((2, 3), keepdim=True), ref.ca[1].weight, ref.ca[1].bias)),
                                   ref.ca[3].weight, ref.ca[3].bias))
        s = F.conv2d(x, ref.sa[0].weight, ref.sa[0].bias, padding=1)
        s = F.relu(F.conv2d(s, ref.sa[1].weight, ref.sa[1].bias, padding=1))
        t = torch.sigmoid(F.conv2d(s, ref.sa[3].weight, ref.sa[3].bias, padding=1))
        expected = (1 - t) * a + t * x
        torch.testing.assert_close(ref(x), expected)


def test_whole_network_composes_the_steps(model):
    """Step 1-10 chained by hand from the model's own sub-modules equals the network's forward."""
    image = torch.rand(1, 3, 16, 20)
    m = model
    with torch.no_grad():
        x = image.unsqueeze(0).repeat(T, 1, 1, 1, 1)
        e1 = m.encoder_level1(m.patch_embed(x))
        e2 = m.encoder_level2(m.down1_2(e1))
        e3 = m.encoder_level3(m.down2_3(e2))
        d3 = m.decoder_level3(e3)
        d2 = m.decoder_level2(m.reduce_chan_level2(torch.cat([m.up3_2(d3), e2], 2)))
        d1 = m.decoder_level1(torch.cat([m.up2_1(d2), e1], 2))
        expected = m.output(m.refinement(d1.mean(0))) + image
        m.apply(lambda mod: mod.reset() if hasattr(mod, "v") else None)
        torch.testing.assert_close(m(image), expected)


def test_ann_twin_uses_relu_and_same_names():
    torch.manual_seed(0)
    snn = esdnet.build_model("small", arch="snn")
    ann = esdnet.build_model("small", arch="ann")
    assert list(snn.state_dict()) == list(ann.state_dict())
    ann.load_state_dict(snn.state_dict())
    assert isinstance(ann.encoder_level1[0].residual[0], torch.nn.ReLU)
    assert not any(type(m).__name__ == "LIFNode" for m in ann.modules())


def test_single_pass_ann_equals_ann_with_T_steps():
    """With a static input the ANN twin computes the same thing at each timestep, so T=1 gives its output."""
    torch.manual_seed(0)
    ann = esdnet.build_model("small", arch="ann").eval()
    single = esdnet.build_model("small", arch="ann", single_pass=True).eval()
    single.load_state_dict(ann.state_dict())
    image = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(single(image), ann(image), rtol=1e-5, atol=1e-5)
    assert single.T == 1 and ann.T == 4


def test_single_pass_requires_ann():
    with pytest.raises(ValueError, match="single_pass"):
        esdnet.build_model("small", arch="snn", single_pass=True)
