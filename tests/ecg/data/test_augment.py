from __future__ import annotations

import pytest
import torch

from ecg.data.augment import augment


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shape_kept_and_input_untouched():
    x = torch.randn(4, 8, 200)
    before = x.clone()
    assert augment(x, seeded()).shape == (4, 8, 200)
    assert torch.equal(x, before)


def test_deterministic_under_a_seeded_generator():
    x = torch.randn(4, 8, 200)
    assert torch.equal(augment(x, seeded(1), crop=100), augment(x, seeded(1), crop=100))
    assert not torch.equal(augment(x, seeded(1)), augment(x, seeded(2)))


def test_scale_within_bounds_per_record():
    x = torch.full((64, 8, 50), 2.0)
    out = augment(x, seeded(), scale=0.1, shift=0.0)
    factor = out / 2.0
    assert factor.min() >= 0.9 - 1e-6 and factor.max() <= 1.1 + 1e-6
    # one factor per record, shared by its leads and samples
    assert torch.allclose(factor, factor[:, :1, :1].expand_as(factor))
    assert factor[:, 0, 0].std() > 0.02


def test_shift_within_bounds_per_record():
    out = augment(torch.zeros(64, 8, 50), seeded(), scale=0.1, shift=0.05)
    assert out.abs().max() <= 0.05 + 1e-6
    assert torch.allclose(out, out[:, :1, :1].expand_as(out))


def test_crop_is_a_window_of_the_record():
    x = torch.arange(300, dtype=torch.float32).repeat(3, 2, 1)
    out = augment(x, seeded(), scale=0.0, shift=0.0, crop=100)
    assert out.shape == (3, 2, 100)
    for record in out:
        start = int(record[0, 0])
        assert torch.equal(record[0], torch.arange(start, start + 100, dtype=torch.float32))
        assert torch.equal(record[1], record[0])


def test_bad_crop():
    with pytest.raises(ValueError, match="crop 500 must be between 1 and the record length 300"):
        augment(torch.zeros(1, 1, 300), crop=500)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device on this machine"))]


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_tensors_device_with_either_generator(device):
    x = torch.ones(4, 8, 100, device=device)
    on_device = augment(x, torch.Generator(device=device).manual_seed(0), crop=50)
    from_cpu = augment(x, seeded(0), crop=50)
    assert on_device.device.type == device and from_cpu.device.type == device
    assert on_device.shape == from_cpu.shape == (4, 8, 50)
    assert torch.equal(from_cpu.cpu(), augment(x.cpu(), seeded(0), crop=50))  # a CPU generator reproduces anywhere
