"""The real ``mnist-lab`` command on tiny toy data instead of MNIST, for tests of the process itself (signals,
exit statuses, encodings): ``python tests/toy_cli.py train ...``. ``TOY_N`` sets the number of toy images; after
each epoch ``EPOCH n`` is printed on stdout, so a test knows how far training got."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    from test_train import tiny_data

    from mnist_lab import cli
    from mnist_lab.callbacks import Callback

    class Marker(Callback):
        def on_epoch_end(self, model, history):
            print(f"EPOCH {len(history)}", flush=True)

    n, fit = int(os.environ.get("TOY_N", "256")), cli.fit
    cli.load_mnist = lambda root=None, val_size=0, seed=0: tiny_data(n)
    cli.fit = lambda model, data, config, device, callbacks, progress: fit(model, data, config, device,
                                                                            [*callbacks, Marker()], progress)
    return cli.main()  # the whole process, as `python -m mnist_lab`


if __name__ == "__main__":
    sys.argv[0] = "mnist-lab"  # the real command's name: Ctrl+C while the package loads is handled as for it
    try:
        from test_train import tiny_data  # noqa: F401 - loaded here, where Ctrl+C is handled as the package does
    except KeyboardInterrupt:
        print("\n中断しました（まだ何も始めていません）。", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
