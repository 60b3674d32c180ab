"""``mnist-lab`` (or ``python -m mnist_lab``): train, evaluate, predict and report from the command line.

Mistakes a user can fix (a missing file, a wrong checkpoint, an unknown preset, a full disk...) end with exit
status 2 and one Japanese line saying what to do, never a traceback. Ctrl+C, SIGTERM and SIGHUP stop a training
the same way: the last finished epoch is saved, and the status is 128 + the signal's number (130 for Ctrl+C;
:mod:`mnist_lab.interrupts`). ``train`` checks its output folder before it trains and never replaces an earlier
run unless ``--force`` is given (see :mod:`mnist_lab.runs`); nothing printed can fail once a run is written
(:mod:`mnist_lab.console`). ``evaluate`` and ``predict``, whose result is what they print, fail when stdout could not
take it: status 2 (a full disk...) or 141 (128 + SIGPIPE, a reader that closed the pipe, as for any Unix command),
with one line on stderr. ``train`` and ``report``, whose results are files, keep their status: their files are
written whole either way, and a note on stderr says that the printed summary was lost (unless the pipe was closed on
purpose).
"""

import argparse
import contextlib
import errno
import importlib.metadata
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import asdict, fields, replace
from datetime import datetime
from pathlib import Path

import torch

from . import recipes
from .callbacks import Callback, TensorBoardLogger
from .checkpoint import checkpoint_size, load_checkpoint, unfinished
from .console import lost_output, one_line, safe_output
from .data import DEFAULT_FOLDER, ENV_ROOT, RAW_FILES, load_mnist, mnist_folder
from .device import DEVICE_CHOICES, best_device
from .errors import UserError, debugging
from .files import DISK_FULL, os_error
from .inference import evaluate, predict_proba
from .interrupts import NAMES, Signals, stop_on_signals
from .metrics import classification_table, confusion_matrix, summary
from .models import MODELS, build_model
from .ood import WARNING, read
from .paths import usable_home_folders, user_path
from .preprocess import load_image, preprocess_drawing
from .recipes import MAX_BATCH_SIZE, PRESETS, SCHEDULES, TrainConfig, for_model, make_config, preset_help, preset_name
from .runs import finished_run, new_run, run_holding, write_run
from .train import fit

ARGPARSE_JA = [  # argparse's English messages -> one Japanese sentence each
    (r"argument (\S+): invalid choice: '?(.*?)'? \(choose from (.*)\)", r"\1 に '\2' は使えません。\3 のどれかを指定してください"),
    (r"argument (\S+): invalid int value: '(.*)'", r"\1 の値 '\2' は整数ではありません。1 や 64 のような整数を指定してください"),
    (r"argument (\S+): invalid float value: '(.*)'", r"\1 の値 '\2' は数ではありません。0.01 のような数を指定してください"),
    (r"argument (\S+): expected one argument", r"\1 の後に値を 1 つ書いてください"),
    (r"argument (\S+): ignored explicit argument '(.*)'", r"\1 には値 '\2' を付けられません"),
    (r"the following arguments are required: (.*)", r"\1 を指定してください"),
    (r"unrecognized arguments: (.*)", r"知らない引数があります: \1"),
    (r"ambiguous option: (\S+) could match (.*)", r"\1 は \2 のどれのことかわかりません。最後まで書いてください"),
    (r"argument (\S+): ([^\x00-\x7f].*)", r"\1 の\2"),  # our own types' Japanese messages
]


def path_argument(text):
    """A file or folder name on the command line: an empty one ("" from an unset shell variable) is a mistake; a
    quoted ``~`` is the home folder, as it would be unquoted."""
    if not text:
        raise argparse.ArgumentTypeError("名前が空です。ファイルやフォルダの名前を書いてください")
    return user_path(text)


def japanese(message):
    """Return argparse's English ``message`` as a Japanese sentence (unknown ones are kept, in parentheses).

    >>> japanese("the following arguments are required: IMAGE")
    'IMAGE を指定してください'
    """
    for pattern, replacement in ARGPARSE_JA:
        if re.fullmatch(pattern, message):
            said = re.sub(pattern, replacement, message)
            return said.replace("command を", "コマンド（train・evaluate・predict・report・app）を").replace("command に", "コマンドに")
    return f"引数が正しくありません（{message}）"


class _Parser(argparse.ArgumentParser):
    """argparse in Japanese: a usage mistake is one line and exit status 2, the help's headings are Japanese."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title, self._optionals.title = "引数", "オプション"
        self.add_argument("-h", "--help", action="help", help="この説明を出して終わる")

    def format_usage(self):
        return super().format_usage().replace("usage:", "使い方:", 1)

    def format_help(self):
        return super().format_help().replace("usage:", "使い方:", 1)

    def parse_known_args(self, args=None, namespace=None):
        self.given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(2, one_line(f"エラー: {japanese(message)}。`{self.help_command()} --help` で使い方を確認してください。") + "\n")

    def help_command(self):
        """The command whose ``--help`` explains the mistake: the subcommand given, if any (argparse reports an extra
        argument of ``train`` from the top-level parser)."""
        commands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
        given = next((a for a in getattr(self, "given", ()) if a in commands), None)
        return f"{self.prog} {given}" if given else self.prog


def package_version():
    """The installed package's version (pyproject.toml's), or "(版不明)" when run from a checkout not installed."""
    try:
        return importlib.metadata.version("mnist-lab")
    except importlib.metadata.PackageNotFoundError:
        return "(版不明)"


def prog_name():
    return "mnist-lab" if Path(sys.argv[0]).name == "mnist-lab" else "python -m mnist_lab"


def _add_data_and_device(p):
    p.add_argument("--mnist-dir", "--data", dest="mnist_dir", default=None, metavar="DIR", type=path_argument,
                   help=f"MNIST を置く／読むフォルダ（既定: 環境変数 {ENV_ROOT}、なければ ./{DEFAULT_FOLDER}。"
                        "--data は以前の名前）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="計算に使うデバイス（既定: auto = CUDA → MPS → CPU の順に選ぶ）")


TRAIN_FLAGS = (("--epochs", int, "エポック数"), ("--batch-size", int, f"バッチサイズ（1〜{MAX_BATCH_SIZE}）"), ("--lr", float, "学習率"),
               ("--seed", int, "乱数の種"), ("--schedule", SCHEDULES, "学習率スケジュール"),
               ("--val-size", int, "学習データから取り分ける検証データの枚数"),
               ("--augment", bool, "データ拡張（回転・平行移動・拡大縮小）: --augment / --no-augment"),
               ("--drawings", bool, "手書き風のデータ拡張（傾き・縦横比・線の太さ・ゆがみも）: --drawings / --no-drawings"),
               ("--patience", int, "早期終了: 検証の損失がこのエポック数下がらなければ止める（0: しない）"),
               ("--ema", float, "重みの指数移動平均の減衰率、例 0.999（0: 使わない）"))


def _add_train(sub):
    t = sub.add_parser("train", help="モデルを学習して OUT/model.pt と OUT/results.json を書く")
    t.add_argument("--preset", default="quick", metavar="PRESET",
                   help=preset_help("quick").replace("%", "%%"))  # argparse formats help with %
    t.add_argument("--model", default=None, metavar="MODEL",
                   help=f"モデル: {', '.join(MODELS)}（既定: プリセットのもの）")
    for flag, kind, meaning in TRAIN_FLAGS:
        defaults = ", ".join(f"{name}: {getattr(c, flag[2:].replace('-', '_'))}" for name, c in PRESETS.items())
        options = ({"action": argparse.BooleanOptionalAction} if kind is bool else
                   {"choices": kind} if isinstance(kind, tuple) else {"type": kind})
        t.add_argument(flag, default=None, help=f"{meaning}（既定: プリセットの値 — {defaults}）", **options)
    _add_data_and_device(t)
    t.add_argument("--out", default=None, metavar="DIR", type=path_argument, help="結果を書くフォルダ（既定: runs/日時-プリセット名）")
    t.add_argument("--force", action="store_true",
                   help="--out に前の学習結果があっても置き換える（--dry-run は最後まで学習した結果を置き換えない。既定: 置き換えずにエラーで止まる）")
    t.add_argument("--tensorboard", default=None, metavar="DIR", type=path_argument,
                   help="TensorBoard のログを書くフォルダ（既定: 書かない。tensorboard パッケージが必要）")
    t.add_argument("--dry-run", action="store_true",
                   help="1バッチだけ学習・評価して全体が動くか確かめる（既定: しない）")
    t.set_defaults(func=train_command)


def build_parser():
    parser = _Parser(prog=prog_name(), description="MNIST 手書き数字認識: 学習・評価・推論・お絵かきアプリ")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="mnist_lab の版を出して終わる")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, title="コマンド")
    _add_train(sub)
    e = sub.add_parser("evaluate", help="チェックポイントをテストデータで評価し、数字ごとの表を出す")
    e.add_argument("checkpoint", type=path_argument, help="train が書いた model.pt")
    _add_data_and_device(e)
    e.set_defaults(func=evaluate_command)
    p = sub.add_parser("predict", help="画像（PNG/JPEG など）の数字を読む")
    p.add_argument("checkpoint", type=path_argument, help="train が書いた model.pt")
    p.add_argument("images", nargs="+", metavar="IMAGE", type=path_argument, help="画像ファイル（大きさ・色・白黒の向きは自由）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="計算に使うデバイス（既定: auto）")
    p.add_argument("--json", action="store_true",
                   help="結果を JSON で出す: 画像ごとに digit・probability・probabilities・energy・not_a_digit"
                        "（数字ではなさそうなら true、モデルに判断の境目がなければ null）（既定: 1 行ずつの文）")
    p.set_defaults(func=predict_command)
    r = sub.add_parser("report", help="train の結果フォルダに学習曲線・予測例・混同行列・間違えた画像の PNG を書く")
    r.add_argument("run_dir", metavar="RUN_DIR", type=path_argument, help="train の --out で指定したフォルダ")
    _add_data_and_device(r)
    r.set_defaults(func=report_command)
    a = sub.add_parser("app", help="手書き数字をその場で読むウェブアプリを起動する（スマホ・タブレットの指やペンでも書ける）")
    a.add_argument("checkpoint", nargs="?", default=None, type=path_argument,
                   help="train が書いた model.pt（既定: 同梱のパッド用モデル mnist_lab/pad_model.pt）")
    a.add_argument("--host", default="127.0.0.1",
                   help="待ち受けるアドレス（既定: 127.0.0.1 = このマシンの中だけ。サーバーなら ssh -L で開く）")
    a.add_argument("--port", type=int, default=8866, help="待ち受けるポート（既定: 8866）")
    a.add_argument("--no-token", action="store_true",
                   help="トークンなしで開けるようにする（既定: ランダムなトークン付きの URL。127.0.0.1 のときだけ使える）")
    a.set_defaults(func=app_command)
    return parser


TRAIN_IMAGES = (RAW_FILES["train-labels-idx1-ubyte"][0] - 8)  # an IDX label file: an 8-byte header, a byte a label


def train_command(args):
    signals = args.signals
    preset = preset_name(args.preset)
    config = train_config(args, preset)
    if config.val_size >= TRAIN_IMAGES:  # known before the data is loaded
        raise UserError(f"検証データの数 {config.val_size} は 0 以上 {TRAIN_IMAGES} 未満にしてください（MNIST の学習データは {TRAIN_IMAGES} 枚）。")
    device = best_device(args.device)
    model = build_model(config.model, seed=config.seed)
    out = Path(args.out) if args.out else default_out(preset)
    if args.dry_run and finished_run(out):  # a check that the pipeline runs never replaces a trained model
        raise UserError(f"{out} には最後まで学習した結果があるので、--dry-run の結果では置き換えません（--force でも）。"
                        "--dry-run には別の --out を指定してください。")
    with new_run(out, args.force, needed=checkpoint_size(model)) as run:  # checks --out before training
        callbacks = [tensorboard_logger(args.tensorboard, out, args.mnist_dir)] if args.tensorboard else []
        callbacks.append(HoldSignals(signals))  # training is over: from here on a signal waits until the run is saved
        data = load_mnist(args.mnist_dir, val_size=config.val_size, seed=config.seed)
        if args.dry_run:  # one batch of everything: proves the pipeline runs end to end in seconds
            data, config = data.head(config.batch_size, config.batch_size), replace(config, epochs=1)
        start = time.perf_counter()
        history = fit(model, data, config, device, callbacks, progress=sys.stderr.isatty())  # no bar in logs
        # --force replaces a run only with a whole one (and a --dry-run never a finished one, should one appear meanwhile)
        run.keep_old = history.interrupted or bool(signals.received) or args.dry_run and finished_run(out)
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = evaluate(model, data.X_test, data.y_test)
        results = {"test_accuracy": test_accuracy, "test_loss": test_loss, "train_seconds": seconds,
                   "epochs": len(history), "kept_epoch": history.kept_epoch, "best_epoch": history.best_epoch,
                   "model": config.model, "preset": preset, "device": str(device), "dry_run": args.dry_run,
                   "interrupted": history.interrupted}
        write_run(run.staging, model, asdict(config), results, history)
    out = run.final
    print(one_line(f"テスト正解率 {test_accuracy:.2%}（学習 {seconds:.1f} 秒, {len(history)} エポック）→ {out}/model.pt, "
                   f"{out}/results.json"))
    if history.interrupted or signals.received:
        why = f"{signals.name()} を受けたので" if signals.received else ""
        kept = ("学習は終わっていたので最後までの結果" if not history.interrupted else
                f"{history.kept_epoch} エポック目の重み" if history.kept_epoch else "1 エポック目の途中の重み")
        print(one_line(f"中断しました（{why}止めました）。{kept}を {out} に保存してあります。"), file=sys.stderr)
    return signals.exit_status(130 if history.interrupted else 0)


def train_config(args, preset):
    """The recipe ``train`` runs: the preset with the flags given; with ``--model``, the preset's recipe for that
    model, as the lesson's for_model makes it (non-digits only for a model that keeps their threshold)."""
    try:
        config = make_config(preset, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, seed=args.seed, schedule=args.schedule, val_size=args.val_size,
                             augment=args.augment, drawings=args.drawings, patience=args.patience, ema=args.ema)
    except UserError as e:  # "epochs は 1 以上..." names the setting as the lesson does; here the flag, if typed
        field = str(e).split(" ", 1)[0]
        if field in {f.name for f in fields(TrainConfig)} - {"model"} and getattr(args, field, None) is not None:
            raise UserError(f"--{field.replace('_', '-')} {str(e).split(' ', 1)[1]}") from e
        raise  # a value from MNIST_LAB_<FIELD>: the message names the variable
    note_env_changes(args, preset)
    if args.model is None:
        return config
    model_config = for_model(config, args.model)
    if config.not_digits and not model_config.not_digits:
        print(one_line(f"お知らせ: {model_config.model} には「数字ではない」の境目をしまう場所がないので、数字でない絵は教えません"
                       "（教えるのは pad_cnn のときだけです）。"), file=sys.stderr)
    return model_config


def note_env_changes(args, preset):
    """One note naming the ``MNIST_LAB_<FIELD>`` variables that changed the preset's recipe where no flag was typed
    (one left from CI or the notebook's fast mode would change a training without a word)."""
    base = PRESETS[preset]
    changed = {field: value for field, value in recipes.env_changes(base).items()
               if getattr(args, field, None) is None and value != getattr(base, field)}
    if changed:
        shown = ", ".join(f"{recipes.ENV_PREFIX}{field.upper()}={value}" for field, value in changed.items())
        print(one_line(f"お知らせ: 環境変数 {shown} でプリセット {preset} のレシピを変えています。"
                       "プリセットのままにするなら unset してください。"), file=sys.stderr)


def default_out(preset):
    """``runs/DATE-TIME-PRESET``, with ``-2``, ``-3``... when a run started in the same second has it."""
    out = Path(f"runs/{datetime.now():%Y%m%d-%H%M%S}-{preset}")
    return next(p for p in (out, *(Path(f"{out}-{i}") for i in range(2, 1000))) if not os.path.lexists(p))


def tensorboard_logger(log_dir, out, mnist_dir=None):
    """The TensorBoard callback for ``--tensorboard log_dir``, which must neither be nor lie inside the run folder
    ``out``, an earlier run folder or the MNIST data's own folder, nor hold ``out`` (a run folder holds a run and
    nothing else: with logs in it, it would no longer be one, nor could ``--force`` replace it); should writing its
    logs fail later (a full disk), training goes on without them."""
    logs, run = Path(os.path.realpath(log_dir)), Path(os.path.realpath(out))
    dataset = Path(os.path.realpath(mnist_folder(mnist_dir) / "MNIST"))
    if logs == dataset or dataset in logs.parents:
        raise UserError(f"--tensorboard {log_dir} は MNIST のデータのフォルダ（{dataset}）の中です。ログは別のフォルダに"
                        "書いてください（例: --tensorboard runs/tb）。")
    if logs == run or run in logs.parents:
        raise UserError(f"--tensorboard {log_dir} が --out {out} の中です。ログは別のフォルダに書いてください"
                        "（例: --tensorboard runs/tb）。")
    if logs in run.parents:
        raise UserError(f"--tensorboard {log_dir} の中に --out {out} があります。ログは学習結果と別のフォルダに書いてください"
                        "（例: --tensorboard runs/tb）。")
    earlier = run_holding(logs)
    if earlier is not None:
        where = "" if earlier == logs else f"の中（{earlier}）"
        raise UserError(f"--tensorboard {log_dir} は前の学習結果のフォルダ{where}です。そこにログを書くと学習結果が壊れるので、"
                        "別のフォルダを指定してください（例: --tensorboard runs/tb）。")
    return BestEffort(TensorBoardLogger(log_dir), f"TensorBoard のログ（{log_dir}）")


class HoldSignals(Callback):
    """At the end of training (within its uninterrupted wrap-up, so no signal slips in between), signals start to
    wait: the run that has been trained is always saved."""

    def __init__(self, signals):
        self.signals = signals

    def on_train_end(self, model, history):
        self.signals.hold()


class BestEffort(Callback):
    """Runs an optional callback's hooks; its first error is told in one line and it is dropped, while the training
    goes on (the logs are extra, the run is not)."""

    def __init__(self, callback, what):
        self.callback, self.what = callback, what

    def _call(self, hook, *args):
        if self.callback is None:
            return False
        try:
            return bool(getattr(self.callback, hook)(*args))
        except Exception as e:  # noqa: BLE001 -- whatever broke the extra, the training must not stop for it
            self.callback = None
            why = os_error(e, self.what) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            print(one_line(f"お知らせ: {self.what}を書けなくなったので、ここから先は書きません（{why}）。学習は続けます。"),
                  file=sys.stderr)
            return False

    def on_train_begin(self, model, history, epochs, steps_per_epoch):
        self._call("on_train_begin", model, history, epochs, steps_per_epoch)

    def on_step(self, model, loss, correct, size):
        self._call("on_step", model, loss, correct, size)

    def on_epoch_begin(self, model):
        self._call("on_epoch_begin", model)

    def before_evaluation(self, model):
        self._call("before_evaluation", model)

    def on_epoch_end(self, model, history):
        return self._call("on_epoch_end", model, history)

    def on_train_end(self, model, history):
        self._call("on_train_end", model, history)


def note_unfinished(ckpt):
    """One note on stderr for a checkpoint whose training was a --dry-run or was stopped: its answers mean little."""
    if unfinished(ckpt):
        print(f"お知らせ: {unfinished(ckpt)}", file=sys.stderr)


def evaluate_command(args):
    model, ckpt = load_checkpoint(args.checkpoint, device=best_device(args.device))
    note_unfinished(ckpt)
    data = load_mnist(args.mnist_dir)
    y_hat = predict_proba(model, data.X_test).argmax(1)
    C = confusion_matrix(data.y_test, y_hat)
    scores = summary(C)
    print(f"モデル: {ckpt['model']}  テスト正解率: {scores['accuracy']:.2%}  "
          f"(macro F1 {scores['f1_macro']:.4f}, {int(C.sum() - C.trace())} / {int(C.sum())} 枚を間違えた)")
    print(classification_table(C).round(4).to_string())
    return 0


def predict_command(args):
    """Read each image on its own: one that cannot be read is one line on stderr, and the rest are still read."""
    model, ckpt = load_checkpoint(args.checkpoint, device=best_device(args.device))
    note_unfinished(ckpt)
    status, results = 0, []
    for path in args.images:
        try:
            reading = read(model, preprocess_drawing(load_image(path)))[0]
            if not all(map(math.isfinite, reading.probabilities)):
                raise UserError("モデルの出力が数になりません（NaN）。学習し直したチェックポイントを使ってください。")
        except Exception as e:  # one bad image never stops the others
            if isinstance(e, (MemoryError, torch.OutOfMemoryError)) or debugging():
                raise
            error, code = explained(e, args)
            print(one_line(f"エラー: {error}" if str(Path(path)) in error else f"エラー: {path}: {error}"), file=sys.stderr)
            results.append({"image": str(path), "error": error})
            status = max(status, code)
            continue
        results.append({"image": str(path), **reading.as_dict()})
        if not args.json:
            warning = f"  ⚠ {WARNING}" if reading.not_a_digit else ""
            print(one_line(f"{path}: {reading.digit}（確率 {reading.probability:.1%}）{warning}"))
    if args.json:
        text = json.dumps(results, ensure_ascii=False, indent=1)
        if any("\ud800" <= c <= "\udfff" for c in text):  # a file name that is not UTF-8: escaped, so JSON stays UTF-8
            text = json.dumps(results, ensure_ascii=True, indent=1)
        print(text)
    return status


def report_command(args):
    os.environ["MPLBACKEND"] = "agg"  # PNG files, never a window: the user's MPLBACKEND (for their own scripts) is moot
    from .report import write_report  # matplotlib is only needed here

    paths, notes = write_report(args.run_dir, args.mnist_dir, best_device(args.device))
    for path in paths:
        print(one_line(f"書きました: {path}"))
    for note in notes:
        print(one_line(f"注意: {note}"))
    return 0


def app_command(args):
    from .app import serve  # Voilà is only needed here

    return serve(args.checkpoint, args.host, args.port, "" if args.no_token else None)


def main(argv=None):
    """Run one command; ``argv`` defaults to the command line. Without ``argv`` main is the whole process, so once
    training has ended a signal is ignored rather than interrupting the exit."""
    try:
        return _main(argv)
    except KeyboardInterrupt as e:  # a signal in the instant before the command's handlers are set, or as they end
        if argv is None:
            for number in filter(None, (getattr(signal, name, None) for name in NAMES)):
                signal.signal(number, signal.SIG_IGN)  # only exiting is left
        print("\n中断しました。", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)


def _main(argv):
    with safe_output():
        args = parsed(argv)
        if args is None:  # --help or --version whose text could not be written
            return 2
        usable_home_folders(["MPLCONFIGDIR"])  # any command may draw; the app checks the folders it needs itself
        # a signal (Ctrl+C, kill, a closed terminal) stops a command cleanly, with one line: nothing half written;
        # the app stops its server itself
        own = args.func is app_command
        stopping = contextlib.nullcontext(Signals()) if own else stop_on_signals(then_ignore=argv is None)
        with stopping as signals:
            args.signals = signals  # train saves what it has when a signal stops it
            try:
                code = args.func(args)
                signals.hold()  # done: a signal from now on only ends the command after its last line
            except KeyboardInterrupt:
                print("\n中断しました（書きかけのファイルは残していません）。", file=sys.stderr)
                return signals.exit_status(130)
            except Exception as e:
                if debugging():
                    raise
                error, code = explained(e, args)
                print(one_line(f"エラー: {error}"), file=sys.stderr)
        return output_status(args, code)


def parsed(argv):
    """The command line's arguments; ``None`` when ``--help`` or ``--version`` could not write its text (a full disk,
    a closed output), said in one line: its exit status must not say it was shown."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as e:
        error = lost_output(sys.stdout) if e.code in (0, None) else None
        if error is None or getattr(error, "errno", None) in (errno.EPIPE, errno.EBADF):  # shown, read as far as
            # wanted (| head), or not wanted at all (>&-): only a failing output (a full disk) is a failure
            raise
        print(one_line(f"エラー: 説明（または版）を標準出力に書けませんでした（{error.strerror or type(error).__name__}）。"), file=sys.stderr)
        return None


PRINTED_RESULTS = {"evaluate", "predict"}  # commands whose result is their output; the others' results are files
CLOSED_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a command stopped by a closed pipe


def output_status(args, code):
    """Return the exit status once stdout is flushed: a command whose printed result was lost fails with one line;
    for the others a lost summary is a note (the files they wrote are whole)."""
    error = lost_output(sys.stdout)
    if error is None:
        return code
    closed = getattr(error, "errno", None) == errno.EPIPE
    why = ("ディスクがいっぱいです" if getattr(error, "errno", None) in DISK_FULL
           else getattr(error, "strerror", None) or type(error).__name__)
    if closed:  # `| head -1`: the reader has all it wanted; 128 + SIGPIPE, silent, as Unix tools end there
        return max(code, CLOSED_PIPE) if args.command in PRINTED_RESULTS else code
    if args.command not in PRINTED_RESULTS:
        print(one_line(f"お知らせ: 画面（標準出力）への表示を書けませんでした（{why}）。書いたファイルはそのままです。"),
              file=sys.stderr)
        return code
    number = getattr(error, "errno", None)
    check = ("標準出力が閉じられています（>&- など）。閉じずに、または > ファイル名 で書き出して" if number == errno.EBADF else
             "出力先（> の先のディスクの空き）を確かめて" if number in DISK_FULL else "出力先（> の先）を確かめて")
    print(one_line(f"エラー: 結果を標準出力に書けず、失われました（{why}）。{check}、やり直してください。"), file=sys.stderr)
    return max(code, 2)


def explained(e, args):
    """Return ``(one Japanese line, exit status)`` for an exception that ended a command."""
    if isinstance(e, UserError):
        return str(e), 2
    text = str(e)
    if isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text:
        hint = "--batch-size を小さくして（例: 64）" if args.command == "train" else ""
        return f"メモリが足りません。{hint}やり直すか、ほかの重い作業を止めてください。", 2
    if isinstance(e, OSError):
        return str(os_error(e, e.filename or "ファイル", "扱えません")), 2
    return (f"予期しないエラーです（{type(e).__name__}: {text.splitlines()[0] if text else ''}）。"
            "環境変数 MNIST_LAB_DEBUG=1 を付けて実行すると詳細が出ます。先生か開発者に知らせてください。"), 1
