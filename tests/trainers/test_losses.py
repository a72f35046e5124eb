"""Scaled BT and regression losses equal their formulas on crafted tensors."""

import math

import torch

from trainers.reward import regression_loss, scaled_bt_loss


def test_scaled_bt_equals_formula():
    chosen, rejected = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 1.5, -1.0])
    strength = torch.tensor([-3.0, 1.0, 2.0])  # sign says which response won; only |m| scales
    expected = sum(abs(m) * -math.log(1 / (1 + math.exp(-(c - r))))
                   for c, r, m in zip([2.0, 0.5, -1.0], [1.0, 1.5, -1.0], [-3.0, 1.0, 2.0])) / 3
    assert math.isclose(scaled_bt_loss(chosen, rejected, strength).item(), expected, rel_tol=1e-6)


def test_scaled_bt_with_unit_scale_is_plain_bt():
    chosen, rejected = torch.randn(5), torch.randn(5)
    bt = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    assert torch.allclose(scaled_bt_loss(chosen, rejected, torch.ones(5)), bt)


def test_regression_masks_missing_labels():
    predictions = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    labels = torch.tensor([[2.0, math.nan, 3.0], [math.nan, 1.0, 2.0]])
    # labelled cells: (1-2)^2, (3-3)^2, (0-1)^2, (4-2)^2 -> mean of 1, 0, 1, 4
    assert math.isclose(regression_loss(predictions, labels).item(), 6 / 4)


def test_regression_without_labels_is_zero_and_differentiable():
    predictions = torch.ones(2, 5, requires_grad=True)
    loss = regression_loss(predictions, torch.full((2, 5), math.nan))
    loss.backward()
    assert loss.item() == 0.0 and predictions.grad is not None
