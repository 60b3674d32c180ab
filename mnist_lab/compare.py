"""Training several recipes on the same data and tabulating them: :func:`compare`."""

import time

from .device import usable_device
from .errors import ArgumentError, UserError, explained_arguments
from .inference import evaluate
from .models import build_model, count_parameters
from .recipes import checked_config
from .train import checked_arguments, fit

COLUMNS = {"model": str, "status": str, "test_accuracy": float, "errors": "Int64", "parameters": int,
           "epochs": int, "seconds": float}


class NotTrained(UserError, KeyError):
    """A name :class:`Trained` has no model for: one line (a ``KeyError`` still, as a dict's missing key is)."""

    def __str__(self):  # KeyError would show the message in quotes
        return str(self.args[0])


class Trained(dict):
    """The models :func:`compare` trained, by name (``trained["quick"]``). A name it holds no model for (■ stopped
    the comparison before that model, or no recipe had that name) is :class:`NotTrained`, one line naming those it
    holds and what to do, instead of a bare ``KeyError``.

    Introduced in the lesson: main.ipynb §12.
    """

    def __missing__(self, name):
        held = "、".join(map(str, self)) or "まだありません"
        raise NotTrained(f"trained に {name!r} のモデルはありません（■ で止めたので学習していないか、configs にない名前です）。"
                         f"学習したモデル: {held}。compare のセルを実行し直すと、全部学習します。")


@explained_arguments("load_mnist() のデータと、名前 → make_config(...) の辞書（1 つ以上）")
def compare(data, configs, device=None, progress=True, models=None):
    """Train one model per ``{name: TrainConfig}``; return a table of test accuracy, mistakes out of the test set,
    parameters, epochs run, training seconds and ``status`` (trained / interrupted / not trained). With a dict as
    ``models``, each model that trained (also one stopped by ■) is put in it under its name, to be used afterwards.

    Each model's epoch is chosen on validation when it has one; the test set is only measured, once, at the end.
    Ctrl+C (■) stops the whole comparison: the model being trained is measured as it is, the rest are listed as
    not trained.

    Introduced in the lesson: main.ipynb §12.
    """
    import pandas as pd

    device = _checked(data, configs, device, models)
    rows, stopped = {}, False
    for name, config in configs.items():
        model = build_model(config.model, seed=config.seed)
        if stopped:
            rows[name] = _row(config, model, "not trained", 0, 0.0, data)
            continue
        print(f"--- {name} ---")
        if models is not None:  # kept from the first step on: ■ at any moment leaves what it learnt so far
            models[name] = model
        start, epochs = time.perf_counter(), 0
        try:
            history = fit(model, data, config, device, progress=progress)
            stopped, epochs = history.interrupted, len(history)
            rows[name] = _row(config, model, "interrupted" if stopped else "trained", epochs,
                              time.perf_counter() - start, data)
        except KeyboardInterrupt:  # ■ between two models' training, or while this one was being measured
            stopped = True
            rows[name] = _row(config, model, "interrupted", 0, time.perf_counter() - start, data)
    return pd.DataFrame(rows).T.astype(COLUMNS)


def _checked(data, configs, device, models):
    """The device to train on, once every argument is checked and every recipe against the data: a late mistake
    loses no model; else :class:`ArgumentError` (or the recipe's own :class:`UserError`), one line."""
    if not isinstance(configs, dict) or not configs:
        raise ArgumentError("compare には、比べるレシピを 1 つ以上、名前 → make_config(...) の辞書で渡してください"
                            f"（今は {'空の辞書' if isinstance(configs, dict) else type(configs).__name__}）。"
                            "例: compare(data, {\"quick\": make_config(\"quick\")})")
    if models is not None and not isinstance(models, dict):
        raise ArgumentError(f"compare の models には、学習したモデルを入れる辞書を渡してください（例: trained = {{}} と作って "
                            f"models=trained。今は {type(models).__name__}）。")
    device = usable_device(device)  # said here, before any model trains, and naming no other function
    for config in configs.values():
        checked_arguments(build_model(checked_config(config).model), data, config, device, [])
    return device


def _row(config, model, status, epochs, seconds, data):
    """One line of the table; accuracy and errors only for a model with at least one finished epoch."""
    accuracy = evaluate(model, data.X_test, data.y_test)[1] if epochs else float("nan")
    errors = round((1 - accuracy) * len(data.y_test)) if epochs else None
    return {"model": config.model, "status": status, "test_accuracy": accuracy, "errors": errors,
            "parameters": count_parameters(model), "epochs": epochs, "seconds": seconds}
