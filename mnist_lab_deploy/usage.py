"""argparse in Japanese for the deployment's commands (standard library only, like them): a usage mistake is one
Japanese line with exit status 2, and ``--help`` has Japanese headings, as ``python -m mnist_lab`` has."""

import argparse
import re

ARGPARSE_JA = [  # argparse's English messages -> one Japanese sentence each
    (r"argument (\S+): invalid \w+ value: '(.*)'", r"\1 の値 '\2' は使えません"),
    (r"argument (\S+): expected one argument", r"\1 の後に値を 1 つ書いてください"),
    (r"unrecognized arguments: (.*)", r"知らない引数があります: \1"),
    (r"the following arguments are required: (.*)", r"\1 を指定してください"),
    (r"argument (\S+): (.*)", r"\1: \2"),  # our own types' Japanese messages
]


class Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes are one Japanese line (exit status 2) and whose help is in Japanese."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title, self._optionals.title = "引数", "オプション"
        self.add_argument("-h", "--help", action="help", help="この説明を出して終わる")

    def format_usage(self):
        return super().format_usage().replace("usage:", "使い方:", 1)

    def format_help(self):
        return super().format_help().replace("usage:", "使い方:", 1)

    def error(self, message):
        said = next((re.sub(p, r, message) for p, r in ARGPARSE_JA if re.fullmatch(p, message)), message)
        self.exit(2, f"エラー: {said}。--help で使い方を確認してください。\n")
