"""``python -m mnist_lab``: train, evaluate, predict and report from the command line.

Mistakes a user can fix (a missing file, a wrong checkpoint, an unknown preset...) end with exit status 2 and one
Japanese line saying what to do, never a traceback.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from .checkpoint import load_checkpoint, save_checkpoint
from .data import ENV_ROOT, load_mnist
from .device import DEVICE_CHOICES, try_gpu
from .errors import UserError
from .metrics import classification_table, confusion_matrix, summary
from .models import MODELS, build_model
from .preprocess import load_image, preprocess_drawing
from .train import PRESETS, SCHEDULES, TensorBoardLogger, evaluate, fit, make_config, predict_proba


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one Japanese line (and exit status 2) instead of usage + English."""

    def error(self, message):
        self.exit(2, f"エラー: 引数が正しくありません（{message}）。`{self.prog} --help` で使い方を確認してください。\n")


def _add_data_and_device(p):
    p.add_argument("--data", default=None, metavar="DIR",
                   help=f"MNIST を置く／読むフォルダ（既定: 環境変数 {ENV_ROOT}、なければ ./data）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="計算に使うデバイス（既定: auto = CUDA → MPS → CPU の順に選ぶ）")


def build_parser():
    parser = _Parser(prog="python -m mnist_lab", description="MNIST 手書き数字認識: 学習・評価・推論")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="モデルを学習して OUT/model.pt と OUT/metrics.json を書く")
    t.add_argument("--preset", choices=PRESETS, default="quick",
                   help="学習レシピ（既定: quick = 約5秒で99%%超、seed = 元資料どおり Adam lr 0.01・バッチ64・10エポック、"
                        "best = 深い CNN 2 つの多数決 + データ拡張で最高精度、CPU で 15 分ほど）")
    t.add_argument("--model", choices=MODELS, default=None, help="モデル（既定: プリセットのもの）")
    for flag, kind, meaning in (("--epochs", int, "エポック数"), ("--batch-size", int, "バッチサイズ"),
                                ("--lr", float, "学習率"), ("--seed", int, "乱数の種"),
                                ("--schedule", SCHEDULES, "学習率スケジュール"),
                                ("--val-size", int, "学習データから取り分ける検証データの枚数"),
                                ("--augment", bool, "データ拡張（回転・平行移動・拡大縮小）: --augment / --no-augment"),
                                ("--patience", int, "早期終了: 検証の損失がこのエポック数下がらなければ止める（0: しない）"),
                                ("--ema", float, "重みの指数移動平均の減衰率、例 0.999（0: 使わない）")):
        defaults = ", ".join(f"{name}: {getattr(c, flag[2:].replace('-', '_'))}" for name, c in PRESETS.items())
        options = ({"action": argparse.BooleanOptionalAction} if kind is bool else
                   {"choices": kind} if isinstance(kind, tuple) else {"type": kind})
        t.add_argument(flag, default=None, help=f"{meaning}（既定: プリセットの値 — {defaults}）", **options)
    _add_data_and_device(t)
    t.add_argument("--out", default=None, metavar="DIR", help="結果を書くフォルダ（既定: runs/日時-プリセット名）")
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="TensorBoard のログを書くフォルダ（既定: 書かない。tensorboard パッケージが必要）")
    t.add_argument("--dry-run", action="store_true",
                   help="1バッチだけ学習・評価して全体が動くか確かめる（既定: しない）")
    t.set_defaults(func=train_command)

    e = sub.add_parser("evaluate", help="チェックポイントをテストデータで評価し、数字ごとの表を出す")
    e.add_argument("checkpoint", help="train が書いた model.pt")
    _add_data_and_device(e)
    e.set_defaults(func=evaluate_command)

    p = sub.add_parser("predict", help="画像（PNG/JPEG）の数字を読む")
    p.add_argument("checkpoint", help="train が書いた model.pt")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="画像ファイル（大きさ・色・白黒の向きは自由）")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="計算に使うデバイス（既定: auto）")
    p.set_defaults(func=predict_command)

    r = sub.add_parser("report", help="train の結果フォルダに学習曲線・予測例・混同行列・間違えた画像の PNG を書く")
    r.add_argument("run_dir", metavar="RUN_DIR", help="train の --out で指定したフォルダ")
    _add_data_and_device(r)
    r.set_defaults(func=report_command)
    return parser


def _out_dir(args):
    return Path(args.out or f"runs/{datetime.now():%Y%m%d-%H%M%S}-{args.preset}")


def train_command(args):
    config = make_config(args.preset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, schedule=args.schedule, val_size=args.val_size,
                         augment=args.augment, patience=args.patience, ema=args.ema)
    device = try_gpu(args.device)
    logger = TensorBoardLogger(args.tensorboard) if args.tensorboard else None
    data = load_mnist(args.data, val_size=config.val_size, seed=config.seed)
    if args.dry_run:  # one batch of everything: proves the pipeline runs end to end in seconds
        data, config = data.head(config.batch_size, config.batch_size), replace(config, epochs=1)
    model = build_model(config.model, seed=config.seed)
    start = time.perf_counter()
    history = fit(model, data, config, device, progress=sys.stderr.isatty(), on_epoch_end=logger)  # no bar in logs
    seconds = time.perf_counter() - start
    if logger is not None:
        logger.close()
    test_loss, test_accuracy = evaluate(model, data.X_test, data.y_test)
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss, "train_seconds": seconds,
               "epochs": len(history), "best_epoch": history.best_epoch, "model": config.model,
               "preset": args.preset, "device": str(device),
               "dry_run": args.dry_run, "interrupted": history.interrupted, "config": asdict(config)}
    out = _out_dir(args)
    save_checkpoint(out / "model.pt", model, asdict(config), metrics)
    (out / "metrics.json").write_text(json.dumps({**metrics, "history": history.to_dict()}, indent=2))
    print(f"テスト正解率 {test_accuracy:.2%}（学習 {seconds:.1f} 秒, {len(history)} エポック）→ {out}/model.pt, {out}/metrics.json")
    return 0


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

    for path in write_report(args.run_dir, args.data, try_gpu(args.device)):
        print(f"書きました: {path}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"エラー: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n中断しました。", file=sys.stderr)
        return 130
