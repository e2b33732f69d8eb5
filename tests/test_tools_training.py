"""The shared second-stage training loop: held-out early stopping keeps the best epoch's weights."""

import numpy as np
import torch

from ferret.tools.training import held_out, train_bce


def test_held_out_split():
    fit, validation = held_out(100)
    assert len(validation) == 10 and not set(fit) & set(validation) and len(fit) + 10 == 100
    fit, validation = held_out(15)  # too few records to judge by: nothing held out
    assert len(fit) == 15 and len(validation) == 0


def test_early_stopping_on_noise_labels():
    # Random labels: the held-out loss can only get worse once the model memorises the fit part.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 32, generator=gen)
    y = (torch.rand(200, 8, generator=gen) < 0.5).float()
    _, validation = held_out(len(x))

    def batches(rng, indices):
        order = torch.from_numpy(indices if rng is None else rng.permutation(indices))
        return [(x[i], y[i], torch.ones(len(i), 8)) for i in order.split(32)]

    def trained(patience: int) -> tuple[int, float]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
        epochs = len(train_bce(model, batches, len(x), epochs=60, lr=1e-2, patience=patience))
        with torch.inference_mode():
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[validation]), y[validation])
        return epochs, loss.item()

    stopped_at, kept_loss = trained(patience=2)
    assert 3 <= stopped_at < 60
    # without stopping (patience never runs out) all 60 epochs run, and the best epoch is still kept
    epochs, best_of_all = trained(patience=10**6)
    assert epochs == 60 and best_of_all <= kept_loss + 1e-6
    assert np.isfinite(kept_loss) and kept_loss < 0.8  # near chance (ln 2), not a memorised model
