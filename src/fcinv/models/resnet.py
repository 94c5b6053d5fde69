"""ResNet-18 (He et al. 2016) with torchvision's module and state-dict names, written here.

``conv1 (7×7, s2) → bn1 → relu → maxpool (3×3, s2) → layer1..layer4 (2 BasicBlocks each:
conv1, bn1, conv2, bn2, and downsample.0/1 where the shape changes) → avgpool → fc``,
with a 1-channel input and k outputs (the standardised θ). The names match
torchvision's ``resnet18`` so that its ImageNet weights load from a local file
(:meth:`ResNet18.load_pretrained`): the 3-channel ``conv1`` is summed over its
input channels (a grey image replicated into R, G and B gives the same response)
and ``fc`` is dropped. torchvision itself is not used.

Inputs are min–max scaled spectra in [0, 1]; the model normalises them with
``(x − input_mean) / input_std`` (by default the mean of ImageNet's channel
statistics, so that pretrained filters see inputs of the range they were trained on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fcinv.errors import CheckpointError, FcinvError, GridError
from fcinv.models.checkpoint import CheckpointMixin, torch_load

#: Blocks per stage of ResNet-18.
LAYERS = (2, 2, 2, 2)
WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class ResNet18Config:
    """Configuration of :class:`ResNet18`.

    Parameters
    ----------
    input_shape
        (n_q, n_E) of the spectra.
    n_out
        Number of outputs k.
    in_channels
        Input channels (1 for spectra; 3 only to mirror torchvision's ImageNet model).
    input_mean, input_std
        Normalisation applied to the [0, 1] input.
    pretrained
        Informational: the file of ImageNet weights the training started from ("" = from scratch).
    """

    input_shape: tuple[int, int]
    n_out: int
    in_channels: int = 1
    input_mean: float = 0.449
    input_std: float = 0.226
    pretrained: str = ""

    def __post_init__(self) -> None:
        if len(self.input_shape) != 2 or min(self.input_shape) < 1 or self.n_out < 1 or self.in_channels < 1:
            raise FcinvError(
                f"input_shape={self.input_shape}, n_out={self.n_out}, in_channels={self.in_channels} must be positive."
            )
        if not self.input_std > 0:
            raise FcinvError(f"input_std={self.input_std} must be > 0.")


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1-projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(CheckpointMixin, nn.Module):
    """ResNet-18 regressor: spectra (B, n_q, n_E) in [0, 1] → standardised θ (B, n_out)."""

    kind = "resnet"
    config_cls = ResNet18Config

    def __init__(self, config: ResNet18Config) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(config.in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (n_blocks, planes) in enumerate(zip(LAYERS, WIDTHS)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(inplanes, planes, stride)] + [
                BasicBlock(planes, planes) for _ in range(n_blocks - 1)
            ]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, config.n_out)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled spectra (B, n_q, n_E) or (B, C, n_q, n_E) → (B, n_out)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if (
            x.dim() != 4
            or x.shape[1] != self.config.in_channels
            or tuple(x.shape[-2:]) != tuple(self.config.input_shape)
        ):
            raise GridError(
                f"the ResNet takes spectra of shape (B, {self.config.input_shape[0]}, {self.config.input_shape[1]}); "
                f"got {tuple(x.shape)}. Pass spectra on the model's grid."
            )
        x = (x - self.config.input_mean) / self.config.input_std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # type: ignore[attr-defined]
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def load_pretrained(self, path: str | Path) -> list[str]:
        """Load torchvision ImageNet ResNet-18 weights from a local file, except ``fc``.

        ``conv1.weight`` of shape (64, 3, 7, 7) is summed over its input channels
        to (64, 1, 7, 7) when this model has one input channel.

        Parameters
        ----------
        path
            A ``torch.save``'d state dict (e.g. torchvision's ``resnet18-f37072fd.pth``),
            optionally wrapped as ``{"state_dict": ...}``.

        Returns
        -------
        list of str
            The names of the tensors loaded.

        Raises
        ------
        CheckpointError
            The file is unreadable, lacks ResNet-18 tensors, or has other shapes.
        """
        path = Path(path)
        state = torch_load(path, "pretrained weights")
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(
                f"pretrained weights {path} hold a {type(state).__name__}, not a state dict. Pass torchvision's resnet18 .pth file."
            )
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.state_dict()
        missing = [k for k in own if not k.startswith("fc.") and k not in state]
        if missing:
            raise CheckpointError(
                f"pretrained weights {path} lack {len(missing)} ResNet-18 tensors (e.g. {missing[0]}). Pass torchvision's resnet18 weights."
            )
        unexpected = [k for k in state if k not in own and not k.startswith("fc.")]
        if unexpected:
            raise CheckpointError(
                f"pretrained weights {path} have tensors ResNet-18 lacks (e.g. {unexpected[0]}). Pass torchvision's resnet18 weights, not another network."
            )
        new = {}
        for k, v in state.items():
            if k.startswith("fc."):
                continue
            if k == "conv1.weight" and v.dim() == 4 and v.shape[1] != self.config.in_channels:
                if self.config.in_channels != 1:
                    raise CheckpointError(
                        f"pretrained conv1 has {v.shape[1]} input channels; this model has {self.config.in_channels}. Use in_channels=1 or 3."
                    )
                v = v.sum(dim=1, keepdim=True)
            if tuple(v.shape) != tuple(own[k].shape):
                raise CheckpointError(
                    f"pretrained tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}. Pass torchvision's resnet18 weights."
                )
            new[k] = v.to(own[k].dtype)
        self.load_state_dict(new, strict=False)
        return sorted(new)
