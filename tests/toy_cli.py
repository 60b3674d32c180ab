"""The real ``mnist-lab`` command on tiny toy data instead of MNIST, for tests of the process itself (signals,
exit statuses, encodings): ``python tests/toy_cli.py train ...`` (or ``report``). ``TOY_N`` sets the number of toy
images; after each epoch ``EPOCH n`` is printed on stdout, so a test knows how far training got. ``TOY_PAUSE`` makes
``report`` stop at a known moment, print ``PAUSED`` and wait for a line on stdin: ``data`` (the run has been read, its
test data not yet), or a figure's name (its temporary file is open, half written)."""

import contextlib
import os
import sys
from pathlib import Path

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
    if sys.argv[1:2] == ["report"]:
        pause_report(os.environ.get("TOY_PAUSE"), lambda root=None: tiny_data(n))
    cli.fit = lambda model, data, config, device, callbacks, progress: fit(model, data, config, device,
                                                                            [*callbacks, Marker()], progress)
    return cli.main()  # the whole process, as `python -m mnist_lab`


def pause():
    print("PAUSED", flush=True)
    sys.stdin.readline()


def pause_report(moment, data):
    from mnist_lab import report

    atomic_file = report.atomic_file

    def loading(root=None):
        if moment == "data":
            pause()
        return data(root)

    @contextlib.contextmanager
    def pausing(path, *args, **kwargs):
        with atomic_file(path, *args, **kwargs) as f:
            if Path(path).name == moment:
                f.write(b"\x89PNG half")
                f.flush()
                pause()
            yield f

    report.load_mnist, report.atomic_file = loading, pausing


if __name__ == "__main__":
    sys.argv[0] = "mnist-lab"  # the real command's name: Ctrl+C while the package loads is handled as for it
    try:
        from test_train import tiny_data  # noqa: F401 - loaded here, where Ctrl+C is handled as the package does
    except KeyboardInterrupt:
        print("\n中断しました（まだ何も始めていません）。", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
