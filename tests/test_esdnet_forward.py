"""Forward shapes and values on the small preset, gradients through the surrogate spikes, determinism."""
import pytest
import torch

import esdnet


@pytest.mark.parametrize("shape", [(1, 3, 80, 80), (2, 3, 75, 61), (1, 3, 33, 18)])
@pytest.mark.parametrize("arch", ["snn", "ann"])
def test_forward_shapes_and_finite(shape, arch):
    torch.manual_seed(0)
    model = esdnet.build_model("small", arch=arch).eval()
    image = torch.rand(*shape)
    with torch.no_grad():
        out = model(image)
    assert out.shape == image.shape
    assert torch.isfinite(out).all()
    assert not torch.equal(out, image)  # the network did something


def test_batch_of_one_equals_same_image_in_batch():
    torch.manual_seed(0)
    model = esdnet.build_model("small").eval()
    images = torch.rand(3, 3, 32, 28)
    with torch.no_grad():
        batch = model(images)
        single = model(images[1:2])
    torch.testing.assert_close(single, batch[1:2], rtol=1e-5, atol=1e-5)


def test_gradients_reach_first_convolution_through_spikes():
    torch.manual_seed(0)
    model = esdnet.build_model("small").train()
    image = torch.rand(2, 3, 32, 32)
    model(image).square().mean().backward()
    first = model.patch_embed.proj.weight.grad
    residual_conv = model.encoder_level1[0].residual[1].weight.grad  # fed only by LIF spikes
    assert first is not None and first.abs().sum() > 0
    assert residual_conv is not None and residual_conv.abs().sum() > 0


def test_same_seed_same_weights_and_outputs():
    image = torch.rand(1, 3, 24, 24)

    def build():
        torch.manual_seed(42)
        return esdnet.build_model("small").eval()

    a, b = build(), build()
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    with torch.no_grad():
        assert torch.equal(a(image), b(image))


def test_wrong_input_rank_is_refused():
    model = esdnet.build_model("small")
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\], got \[3, 16, 16\]"):
        model(torch.rand(3, 16, 16))


def test_runs_on_another_device_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    model = esdnet.build_model("small").cuda().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 30, 30, device="cuda"))
    assert out.device.type == "cuda"


@pytest.mark.parametrize("arch", ["snn", "ann"])
def test_global_max_pools_compute_what_adaptive_max_pooling_computes(arch):
    """The attention's AdaptiveMaxPool3d(1) are replaced by one amax each (CUDA's adaptive pooling kernel was
    99% of the GPU forward): each pool, and the whole forward, give bit-identical values with the originals."""
    from esdnet.model import GlobalMaxPool3d

    torch.manual_seed(0)
    for shape in [(2, 4, 6, 9, 7), (4, 6, 9, 7)]:
        x = torch.randn(shape)
        assert torch.equal(GlobalMaxPool3d()(x), torch.nn.AdaptiveMaxPool3d(1)(x))
    model = esdnet.build_model("small", arch=arch).eval()
    pools = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
             if isinstance(child, GlobalMaxPool3d)]
    assert len(pools) == 2 * sum(1 for m in model.modules() if type(m).__name__ == "MultiDimensionalAttention")
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        swapped = model(image)
        for parent, name in pools:
            setattr(parent, name, torch.nn.AdaptiveMaxPool3d(1))
        original = model(image)
    assert torch.equal(swapped, original)
