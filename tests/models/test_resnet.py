"""ResNet-18: torchvision-compatible names, shapes, pretrained-weight adaptation."""

from __future__ import annotations

import pytest
import torch

from fcinv.errors import CheckpointError, GridError
from fcinv.models import ResNet18, ResNet18Config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def torchvision_resnet18_keys() -> list[str]:
    """torchvision.models.resnet18().state_dict() keys, written out from its definition."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{p}" for p in bn]
    for layer in range(1, 5):
        for block in range(2):
            pre = f"layer{layer}.{block}"
            keys += [f"{pre}.conv1.weight"] + [f"{pre}.bn1.{p}" for p in bn]
            keys += [f"{pre}.conv2.weight"] + [f"{pre}.bn2.{p}" for p in bn]
            if layer > 1 and block == 0:
                keys += [f"{pre}.downsample.0.weight"] + [f"{pre}.downsample.1.{p}" for p in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_state_dict_names_match_torchvision():
    model = ResNet18(ResNet18Config((24, 16), n_out=8))
    keys = list(model.state_dict())
    expected = torchvision_resnet18_keys()
    assert len(expected) == 122
    assert keys == expected
    sd = model.state_dict()
    assert sd["conv1.weight"].shape == (64, 1, 7, 7)
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd["fc.weight"].shape == (8, 512)
    n_params = sum(p.numel() for p in model.parameters())
    assert (
        n_params == 11_689_512 - 513 * 1000 + 513 * 8 - 64 * 2 * 49
    )  # torchvision's 11.69 M, 1 input channel, 8 outputs


def test_forward_shapes_and_grid_check():
    model = ResNet18(ResNet18Config((20, 12), n_out=3)).eval()
    assert model(torch.rand(2, 20, 12)).shape == (2, 3)
    with pytest.raises(GridError, match=r"takes spectra of shape \(B, 20, 12\); got \(2, 1, 20, 13\)"):
        model(torch.rand(2, 20, 13))


def test_load_pretrained_sums_rgb_and_drops_fc(tmp_path):
    imagenet = ResNet18(ResNet18Config((20, 12), n_out=1000, in_channels=3))
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    model = ResNet18(ResNet18Config((20, 12), n_out=4))
    fc_before = model.fc.weight.detach().clone()
    loaded = model.load_pretrained(path)
    assert "fc.weight" not in loaded and len(loaded) == 120
    torch.testing.assert_close(model.conv1.weight, imagenet.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.layer3[1].bn2.running_var, imagenet.layer3[1].bn2.running_var)
    torch.testing.assert_close(model.fc.weight, fc_before)
    # a grey image replicated into RGB gives the same conv1 response
    x = torch.rand(1, 1, 20, 12)
    torch.testing.assert_close(model.conv1(x), imagenet.conv1(x.expand(1, 3, 20, 12)), rtol=1e-4, atol=1e-5)


def test_load_pretrained_refuses_other_networks(tmp_path):
    model = ResNet18(ResNet18Config((20, 12), n_out=4))
    sd = ResNet18(ResNet18Config((20, 12), n_out=1000, in_channels=3)).state_dict()
    del sd["layer4.1.bn2.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"lack 1 ResNet-18 tensors \(e.g. layer4.1.bn2.weight\)"):
        model.load_pretrained(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="is corrupt or not a torch file"):
        model.load_pretrained(tmp_path / "junk.pth")
