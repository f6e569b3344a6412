"""experiments/pytorch_mnist.py, the PyTorch MNIST example on minidl: a few real batches on
each device, through the script's own Net, train() and test()."""

import argparse
import re

import numpy as np

import minidl as md
from minidl.data import DataLoader, datasets, transforms
from tests.script_harness import load_experiment


class _First:
    """The first n items of a dataset (the script's loaders see the full sets)."""

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.dataset[i]


def test_example_trains_and_tests_a_few_batches(device, capsys):
    script = load_experiment("pytorch_mnist")
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.1307,), (0.3081,))])
    md.manual_seed(1)
    train = DataLoader(_First(datasets.MNIST(train=True, transform=transform), 320),
                       batch_size=64, shuffle=True, num_workers=1, pin_memory=True)
    test = DataLoader(_First(datasets.MNIST(train=False, transform=transform), 200),
                      batch_size=100)
    model = script.Net().to(device)
    assert model.fc1.weight.shape == (128, 9216)  # PyTorch's (out, in) layout
    optimizer = md.optim.Adadelta(model.parameters(), lr=1.0)
    args = argparse.Namespace(log_interval=1, dry_run=False)
    script.train(args, model, device, train, optimizer, 1)
    script.test(model, device, test)
    out = capsys.readouterr().out
    losses = [float(v) for v in re.findall(r"Loss: ([0-9.]+)", out)]
    assert len(losses) == 5 and "[256/320 (80%)]" in out
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    correct = int(re.search(r"Accuracy: (\d+)/200", out).group(1))
    assert correct > 40  # 5 Adadelta steps already beat chance (20 of 200)
