"""What a student reads when the hub cannot start or keep their server: one Japanese line with the real reason.

Each message is raised as a :class:`StudentError`. JupyterHub shows an exception's ``jupyterhub_message`` on the
student's own pages (the error page, the spawn progress, the "server not running" page) instead of its generic
English "contact admin"; ``why`` names the case for the Japanese templates (hub/templates) and for the tests, so
that the wording here can be edited freely.
"""

from tornado import web


class StudentError(web.HTTPError):
    """A spawn failure the student is told about in Japanese (``why``: a short name of the case)."""

    def __init__(self, status_code, why, message):
        super().__init__(status_code, "%s", message)
        self.why = why
        self.jupyterhub_message = message


def gpus_full(max_per_gpu):
    return StudentError(503, "gpus-full", f"どの GPU もすでに {max_per_gpu} 人が使っています。"
                                          "だれかがサーバーを止めるまで待ってから、もう一度起動してください。")


def nvidia_smi_failed(error):
    return StudentError(503, "nvidia-smi", f"GPU の状態が読めません（nvidia-smi: {error}）。管理者に知らせてください。")


def image_missing(image):
    return StudentError(503, "image-missing", f"授業のイメージ {image} がこのサーバーにありません。管理者に知らせてください"
                                              "（管理者は hub/ で docker compose up -d --build）。")


def fence_failed(error):
    return StudentError(503, "network", "サーバーのネットワークを制限できなかったので、起動をやめました"
                                        f"（{error}）。管理者に知らせてください。")


def over_quota(used, quota):
    return StudentError(507, "disk-quota", f"/work が {gib(used)} になり、1 人分の上限 {gib(quota)} を超えたので、"
                                           "サーバーを止めました。もう一度起動して、いらないファイル（runs/ の古い結果など）を"
                                           "消してください。上限を超えたまま増やすと、また止まります。")


def disk_full(free):
    return StudentError(507, "disk-full", f"サーバーのディスクの空きが {gib(free)} しかなくなったので、書き込み中だった"
                                          "サーバーを止めました。管理者に知らせてください。もう一度起動して、いらない"
                                          "ファイルを消すことはできます。")


def from_note(note):
    """The :class:`StudentError` a stopped server left for the student's next start (see ``note``)."""
    return {"disk-quota": over_quota, "disk-full": disk_full}[note["why"]](*note["args"])


def note(why, *args):
    """A reason to keep in the hub's database (JSON) until the student's next start."""
    return {"why": why, "args": list(args)}


def gib(size):
    """``size`` bytes for people: ``1.5 GiB``, ``120 MiB``."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


# ---- the login and sign-up pages (hub/templates/native-login.html, signup.html), by case ----

SIGN_UP = {
    "waiting-for-approval": "登録しました。先生が承認するまでログインできません。承認されたら、ログインのページから入ってください。",
    "signed-up": "登録しました。ログインのページから入ってください。",
    "name-taken": "この名前はもう使われています。別の名前にしてください。",
    "password-mismatch": "確認のために入れたパスワードが、最初のものと違います。もう一度入れてください。",
    "refused": "登録できませんでした。名前は英小文字・数字・- と _（32 文字まで、先頭は英小文字か数字）、パスワードは "
               "{minimum} 文字以上で、よくあるもの（password123 など）は使えません。",
    "not-human": "reCAPTCHA を確かめられませんでした。もう一度試してください。",
}

LOGIN = {
    "waiting-for-approval": "{name} さんのアカウントは、まだ先生に承認されていません。承認されてからログインしてください。",
    "locked": "パスワードを何度も間違えたので、しばらく（{minutes} 分ほど）待ってから、もう一度試してください。",
    "wrong-password": "名前かパスワードが違います。",
}


def sign_up_result(why, minimum=0):
    """What the sign-up page says in the case ``why`` (a key of :data:`SIGN_UP`)."""
    return SIGN_UP[why].format(minimum=minimum)


def login_refused(why, name="", minutes=0):
    """What the login page says when a login is refused in the case ``why`` (a key of :data:`LOGIN`)."""
    return LOGIN[why].format(name=name, minutes=minutes)
