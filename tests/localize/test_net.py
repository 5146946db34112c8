"""The localizer's two architectures: output maps on the input grid, exact cell alignment of the
8 mm one, weights that name their architecture, warm starts across architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vertfrac_core.localize.net import OUT_CHANNELS, LocalizerNet, cells_to_grid


@pytest.mark.parametrize("arch", ["full", "patch"])
@pytest.mark.parametrize("shape", [(24, 20, 20), (23, 19, 21)])
def test_output_maps_cover_the_input_grid(arch: str, shape: tuple[int, int, int]) -> None:
    net = LocalizerNet(4, arch).eval()
    with torch.inference_mode():
        y = net(torch.randn(1, 2, *shape))
    assert tuple(y.shape) == (1, OUT_CHANNELS, *shape)
    assert torch.isfinite(y).all()


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown localizer architecture"):
        LocalizerNet(4, "tiny")


def test_patch_output_is_aligned_with_the_grid() -> None:
    """A field linear in the voxel index, put through the 8 mm cells (2x2x2 averages) and
    interpolated back as the network does, comes back unchanged inside the grid: the cell
    centres sit where the network's final interpolation assumes them (a half-voxel shift
    would bias every curve point by 2 mm)."""
    z, y, x = np.meshgrid(np.arange(20.0), np.arange(16.0), np.arange(18.0), indexing="ij")
    field = torch.from_numpy((0.3 * z - 0.2 * y + 0.1 * x)[None, None]).float()
    cells = torch.nn.functional.avg_pool3d(field, 2)  # what a 2x2x2 stride-2 patch sees
    back = cells_to_grid(cells, field.shape[2:])
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1), slice(1, -1))
    assert torch.allclose(back[inner], field[inner], atol=1e-5)
    # the network's way in is such a 2x2x2 patch with stride 2
    net = LocalizerNet(1, "patch").eval()
    stem_conv = net.stem[0]
    assert stem_conv.kernel_size == (2, 2, 2) and stem_conv.stride == (2, 2, 2)


def test_warm_start_takes_over_the_shared_levels(tmp_path) -> None:
    from vertfrac_core.train.localizer import LocalizerTrainSettings, train_localizer

    full = LocalizerNet(4, "full")
    src = tmp_path / "full.pt"
    torch.save({"model": full.state_dict(), "width": 4, "arch": "full"}, src)
    weights = train_localizer(LocalizerTrainSettings(
        out_dir=str(tmp_path / "run"), steps=1, batch=1, crop=(24, 24, 24), cache_size=1,
        width=4, arch="patch", init_from=str(src), checkpoint_every=1))
    state = torch.load(weights, weights_only=False)
    assert state["arch"] == "patch"
    net = LocalizerNet(4, "patch")
    net.load_state_dict(state["model"])
    # one optimiser step moved the weights a little; the shared levels started from the source
    shared = [k for k in state["model"] if k.startswith(("enc2", "enc3", "dec2"))]
    assert shared
    for k in shared:
        diff = (state["model"][k] - full.state_dict()[k]).abs().max().item()
        assert diff < 0.05, (k, diff)
    assert not any(k.startswith(("enc0", "dec0")) for k in state["model"])


def test_localizer_loads_the_architecture_its_weights_name(tmp_path) -> None:
    from vertfrac_core.localize.model import Localizer

    net = LocalizerNet(4, "patch")
    path = tmp_path / "w.pt"
    torch.save({"model": net.state_dict(), "width": 4, "arch": "patch", "spacing_mm": 4.0}, path)
    loc = Localizer(path, device="cpu")
    assert loc.net.arch == "patch"
