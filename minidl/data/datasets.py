"""Map-style datasets with torchvision's constructor: MNIST and FashionMNIST.

    train = datasets.MNIST(train=True, transform=transforms.Compose([
        transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
    image, label = train[0]          # image: Tensor (1, 28, 28), label: int

The files are found, downloaded and hash-checked as minidl.data.load_dataset does (root None:
MINIDL_DATA, the repository's datasets/ folder, then the user cache). Items are (transformed
image, label); without a transform the image is the raw (28, 28) uint8 array.
"""

from __future__ import annotations

from minidl.data.mnist import load_dataset


class MNIST:
    """The 60000 training or 10000 test digits; item i is (transform(image_i), label_i)."""

    name = "mnist"

    def __init__(self, root=None, train: bool = True, download: bool = True, transform=None,
                 target_transform=None):
        (x_train, y_train), (x_test, y_test) = load_dataset(self.name, root, download)
        self.data, self.targets = (x_train, y_train) if train else (x_test, y_test)
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        image, label = self.data[i], int(self.targets[i])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split!r}, samples={len(self)})"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017): the same layout as MNIST, clothing images."""

    name = "fashion-mnist"
