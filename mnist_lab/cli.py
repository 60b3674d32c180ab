"""``mnist-lab`` (or ``python -m mnist_lab``): train, evaluate, predict and report from the command line.

Mistakes a user can fix (a missing file, a wrong checkpoint, an unknown preset, a full disk...) end with exit
status 2 and one Japanese line saying what to do, never a traceback; Ctrl+C ends with 130. ``train`` checks its
output folder before it trains and never replaces an earlier run unless ``--force`` is given (see
:mod:`mnist_lab.runs`).
"""

import argparse
import os
import re
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from .callbacks import TensorBoardLogger
from .checkpoint import load_checkpoint
from .data import ENV_ROOT, load_mnist
from .device import DEVICE_CHOICES, try_gpu
from .errors import UserError
from .files import os_error
from .inference import evaluate, predict_proba
from .metrics import classification_table, confusion_matrix, summary
from .models import MODELS, build_model
from .preprocess import load_image, preprocess_drawing
from .recipes import PRESETS, SCHEDULES, make_config, preset_name
from .runs import new_run, write_run
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
]


def japanese(message):
    """Return argparse's English ``message`` as a Japanese sentence (unknown ones are kept, in parentheses).

    >>> japanese("the following arguments are required: IMAGE")
    'IMAGE を指定してください'
    """
    for pattern, replacement in ARGPARSE_JA:
        if re.fullmatch(pattern, message):
            return re.sub(pattern, replacement, message).replace("command を", "コマンド（train・evaluate・predict・report・app）を")
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

    def error(self, message):
        self.exit(2, f"エラー: {japanese(message)}。`{self.prog} --help` で使い方を確認してください。\n")


def prog_name():
    return "mnist-lab" if Path(sys.argv[0]).name == "mnist-lab" else "python -m mnist_lab"


def _add_data_and_device(p):
    p.add_argument("--data", default=None, metavar="DIR",
                   help=f"MNIST を置く／読むフォルダ（既定: 環境変数 {ENV_ROOT}、なければ ./data）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="計算に使うデバイス（既定: auto = CUDA → MPS → CPU の順に選ぶ）")


TRAIN_FLAGS = (("--epochs", int, "エポック数"), ("--batch-size", int, "バッチサイズ"), ("--lr", float, "学習率"),
               ("--seed", int, "乱数の種"), ("--schedule", SCHEDULES, "学習率スケジュール"),
               ("--val-size", int, "学習データから取り分ける検証データの枚数"),
               ("--augment", bool, "データ拡張（回転・平行移動・拡大縮小）: --augment / --no-augment"),
               ("--drawings", bool, "手書き風のデータ拡張（傾き・縦横比・線の太さ・ゆがみも）: --drawings / --no-drawings"),
               ("--patience", int, "早期終了: 検証の損失がこのエポック数下がらなければ止める（0: しない）"),
               ("--ema", float, "重みの指数移動平均の減衰率、例 0.999（0: 使わない）"))


def _add_train(sub):
    t = sub.add_parser("train", help="モデルを学習して OUT/model.pt と OUT/metrics.json を書く")
    t.add_argument("--preset", default="quick", metavar="PRESET",
                   help="学習レシピ（既定: quick = 1 エポックで99%%超、CPU 2 コアで 5〜16 秒。original = 元資料の CNN とレシピ（Adam lr 0.01・バッチ64）を授業と同じ"
                        " 3 エポック（元資料どおりなら --epochs 10）。best = 深い CNN 2 つの確率の平均 + データ拡張で最高精度、CPU 2 コアで 15〜45 分。"
                        "pad = お絵かき用: quick のモデルを手書き風のデータ拡張で 3 エポック、CPU 2 コアで約 1 分）")
    t.add_argument("--model", default=None, metavar="MODEL",
                   help=f"モデル: {', '.join(MODELS)}（既定: プリセットのもの）")
    for flag, kind, meaning in TRAIN_FLAGS:
        defaults = ", ".join(f"{name}: {getattr(c, flag[2:].replace('-', '_'))}" for name, c in PRESETS.items())
        options = ({"action": argparse.BooleanOptionalAction} if kind is bool else
                   {"choices": kind} if isinstance(kind, tuple) else {"type": kind})
        t.add_argument(flag, default=None, help=f"{meaning}（既定: プリセットの値 — {defaults}）", **options)
    _add_data_and_device(t)
    t.add_argument("--out", default=None, metavar="DIR", help="結果を書くフォルダ（既定: runs/日時-プリセット名）")
    t.add_argument("--force", action="store_true",
                   help="--out に前の学習結果があっても置き換える（既定: 置き換えずにエラーで止まる）")
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="TensorBoard のログを書くフォルダ（既定: 書かない。tensorboard パッケージが必要）")
    t.add_argument("--dry-run", action="store_true",
                   help="1バッチだけ学習・評価して全体が動くか確かめる（既定: しない）")
    t.set_defaults(func=train_command)


def build_parser():
    parser = _Parser(prog=prog_name(), description="MNIST 手書き数字認識: 学習・評価・推論・お絵かきアプリ")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, title="コマンド")
    _add_train(sub)
    e = sub.add_parser("evaluate", help="チェックポイントをテストデータで評価し、数字ごとの表を出す")
    e.add_argument("checkpoint", help="train が書いた model.pt")
    _add_data_and_device(e)
    e.set_defaults(func=evaluate_command)
    p = sub.add_parser("predict", help="画像（PNG/JPEG など）の数字を読む")
    p.add_argument("checkpoint", help="train が書いた model.pt")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="画像ファイル（大きさ・色・白黒の向きは自由）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="計算に使うデバイス（既定: auto）")
    p.set_defaults(func=predict_command)
    r = sub.add_parser("report", help="train の結果フォルダに学習曲線・予測例・混同行列・間違えた画像の PNG を書く")
    r.add_argument("run_dir", metavar="RUN_DIR", help="train の --out で指定したフォルダ")
    _add_data_and_device(r)
    r.set_defaults(func=report_command)
    a = sub.add_parser("app", help="手書き数字をその場で読むウェブアプリを起動する（スマホ・タブレットの指やペンでも書ける）")
    a.add_argument("checkpoint", nargs="?", default=None,
                   help="train が書いた model.pt（既定: 同梱のパッド用モデル mnist_lab/pad_model.pt）")
    a.add_argument("--host", default="127.0.0.1",
                   help="待ち受けるアドレス（既定: 127.0.0.1 = このマシンの中だけ。サーバーなら ssh -L で開く）")
    a.add_argument("--port", type=int, default=8866, help="待ち受けるポート（既定: 8866）")
    a.add_argument("--no-token", action="store_true",
                   help="トークンなしで開けるようにする（既定: ランダムなトークン付きの URL。127.0.0.1 のときだけ使える）")
    a.set_defaults(func=app_command)
    return parser


def train_command(args):
    preset = preset_name(args.preset)
    config = make_config(preset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, schedule=args.schedule, val_size=args.val_size,
                         augment=args.augment, drawings=args.drawings, patience=args.patience, ema=args.ema)
    device = try_gpu(args.device)
    out = Path(args.out or f"runs/{datetime.now():%Y%m%d-%H%M%S}-{preset}")
    with new_run(out, args.force) as folder:  # checks --out before anything is trained
        callbacks = [TensorBoardLogger(args.tensorboard)] if args.tensorboard else []
        data = load_mnist(args.data, val_size=config.val_size, seed=config.seed)
        if args.dry_run:  # one batch of everything: proves the pipeline runs end to end in seconds
            data, config = data.head(config.batch_size, config.batch_size), replace(config, epochs=1)
        model = build_model(config.model, seed=config.seed)
        start = time.perf_counter()
        history = fit(model, data, config, device, callbacks, progress=sys.stderr.isatty())  # no bar in logs
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = evaluate(model, data.X_test, data.y_test)
        metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss, "train_seconds": seconds,
                   "epochs": len(history), "kept_epoch": history.kept_epoch, "best_epoch": history.best_epoch,
                   "model": config.model, "preset": preset, "device": str(device), "dry_run": args.dry_run,
                   "interrupted": history.interrupted}
        write_run(folder, model, asdict(config), metrics, history)
    print(f"テスト正解率 {test_accuracy:.2%}（学習 {seconds:.1f} 秒, {len(history)} エポック）→ {out}/model.pt, "
          f"{out}/metrics.json")
    return 130 if history.interrupted else 0


def evaluate_command(args):
    model, ckpt = load_checkpoint(args.checkpoint, device=try_gpu(args.device))
    data = load_mnist(args.data)
    y_hat = predict_proba(model, data.X_test).argmax(1)
    C = confusion_matrix(data.y_test, y_hat)
    scores = summary(C)
    print(f"モデル: {ckpt['model']}  テスト正解率: {scores['accuracy']:.2%}  "
          f"(macro F1 {scores['f1_macro']:.4f}, {int(C.sum() - C.trace())} / {int(C.sum())} 枚を間違えた)")
    print(classification_table(C).round(4).to_string())
    return 0


def predict_command(args):
    model, _ = load_checkpoint(args.checkpoint, device=try_gpu(args.device))
    failed = 0
    for path in args.images:
        try:
            probs = predict_proba(model, preprocess_drawing(load_image(path)))[0]
        except UserError as e:
            print(f"エラー: {e}" if str(path) in str(e) else f"エラー: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        digit = int(probs.argmax())
        print(f"{path}: {digit}（確率 {probs[digit]:.1%}）")
    return 2 if failed else 0


def report_command(args):
    from .report import write_report  # matplotlib is only needed here

    paths, notes = write_report(args.run_dir, args.data, try_gpu(args.device))
    for path in paths:
        print(f"書きました: {path}")
    for note in notes:
        print(f"注意: {note}")
    return 0


def app_command(args):
    from .app import serve  # Voilà is only needed here

    return serve(args.checkpoint, args.host, args.port, "" if args.no_token else None)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\n中断しました（書きかけのファイルは残していません）。", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MNIST_LAB_DEBUG"):
            raise
        error, code = explained(e, args)
        print(f"エラー: {error}", file=sys.stderr)
        return code


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
