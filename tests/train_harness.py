"""Helpers shared by the training tests."""


def interrupt_forward(model, at: int) -> None:
    """Make the model's `at`-th forward call raise KeyboardInterrupt (Ctrl-C inside an epoch)."""
    forward, calls = model.forward, {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return forward(x)
    object.__setattr__(model, "forward", flaky)
