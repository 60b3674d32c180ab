"""Accounts: NativeAuthenticator (students sign up, the admin approves) with three changes for a class.

- The admin's account is made by the hub itself, never by signing up: at every start the admin (HUB_ADMIN) gets
  the password kept in the hub's volume (``admin_password_file``, made at the first start, 0600; delete it and
  restart for a new one). Nobody can take the name by signing up first, and since that password is long and
  random, failed logins never lock the admin out (students still wait after five wrong passwords).
- Approving, un-approving and discarding an account are POSTs with the XSRF token (forms on /hub/authorize),
  never a GET link that a chat message could make the admin open.
- Un-approving a student ends what they have: their server is stopped, every token of theirs (API and OAuth)
  deleted, their login cookies invalidated. Their files stay.
- The login and sign-up pages say in Japanese what happened (:mod:`.messages`), and name the case in ``why``
  (hub/templates: ``data-why``), so that tests check the case and the wording stays free to edit.
"""

import os
import secrets
from pathlib import Path

import bcrypt
from jupyterhub.utils import new_token
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native
from nativeauthenticator.handlers import LocalBase, admin_users_scope
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode

from . import messages


class LabAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with an admin made by the hub and approval changes that take effect at once."""

    admin_password_file = Unicode("/srv/jupyterhub/admin-password", config=True,
                                  help="where the admin's password is kept (made at the first start)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.admin_users:
            self.make_admin(name)

    def admin_password(self):
        """The admin's password from its file, made (0600) when missing."""
        path = Path(self.admin_password_file)
        if not path.is_file():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(18) + "\n")
        return path.read_text().strip()

    def make_admin(self, name):
        """The admin's account, approved, with the password of the file."""
        password = self.admin_password()
        info = self.get_user(name)
        if info is None:
            info = UserInfo(username=name, password=b"", is_authorized=True)
            self.db.add(info)
        if not info.password or not info.is_valid_password(password):
            info.password = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        info.is_authorized = True
        self.db.commit()
        self.log.info("The admin %s logs in with the password in %s (in the hub's container: cat %s)", name,
                      self.admin_password_file, self.admin_password_file)

    def change_password(self, username, new_password):
        changed = super().change_password(username, new_password)
        if changed and username in self.admin_users:  # the file stays the admin's password, also after a restart
            Path(self.admin_password_file).write_text(new_password + "\n")
        return changed

    def is_blocked(self, username):
        return username not in self.admin_users and super().is_blocked(username)

    def add_login_attempt(self, username):
        if username not in self.admin_users:
            super().add_login_attempt(username)

    async def refresh_user(self, user, handler=None):
        """A user whose approval was taken back must log in again (and cannot)."""
        info = self.get_user(user.name)
        return info is not None and info.is_authorized

    def get_handlers(self, app):
        replaced = {r"/authorize/([^/]*)": ToggleAuthorizationHandler, r"/discard/([^/]*)": DiscardHandler,
                    r"/login": LoginHandler, r"/signup": SignUpHandler}
        return [(path, replaced.get(path, handler)) for path, handler in super().get_handlers(app)]


class ToggleAuthorizationHandler(LocalBase):
    """POST /hub/authorize/NAME: approve NAME, or take the approval back and end their sessions and server."""

    @admin_users_scope
    async def post(self, name):
        info = UserInfo.change_authorization(self.db, name)
        if info is not None and not info.is_authorized:
            await self.revoke(name)
        self.redirect(self.hub.base_url + "authorize#" + name)

    async def revoke(self, name):
        user = self.find_user(name)
        if user is None:
            return
        for server_name, spawner in list(user.spawners.items()):
            if spawner.active and not spawner.pending:
                await self.stop_single_user(user, server_name)
        for token in list(user.orm_user.api_tokens):
            self.db.delete(token)
        user.orm_user.cookie_id = new_token()  # every login cookie of theirs names the old one
        self.db.commit()
        self.log.info("Approval of %s taken back: server stopped, tokens deleted, logged out", name)


class DiscardHandler(LocalBase):
    """POST /hub/discard/NAME: delete a sign-up that was never approved (as NativeAuthenticator's GET link did)."""

    @admin_users_scope
    async def post(self, name):
        info = self.authenticator.get_user(name)
        if info is not None and not info.is_authorized:
            self.authenticator.delete_user(type("User", (), {"name": name}))
            if self.users.get(name) is not None:
                self.users.delete(name)
        self.redirect(self.hub.base_url + "authorize")


class WhyInTemplates:
    """A handler that names its page's case (``why``) for the templates (``data-why``)."""

    why = ""

    @property
    def template_namespace(self):
        return {**super().template_namespace, "why": self.why}


class SignUpHandler(WhyInTemplates, native.SignUpHandler):
    """/hub/signup, its result in Japanese."""

    def get_result_message(self, user, assume_user_is_human, username_already_taken, confirmation_matches,
                           user_is_admin):
        alert, _ = super().get_result_message(user, assume_user_is_human, username_already_taken,
                                              confirmation_matches, user_is_admin)
        if not assume_user_is_human:
            self.why = "not-human"
        elif username_already_taken:
            self.why = "name-taken"
        elif not confirmation_matches:
            self.why = "password-mismatch"
        elif user is None:
            self.why = "refused"
        elif self.authenticator.open_signup or user_is_admin:
            self.why = "signed-up"
        else:
            self.why = "waiting-for-approval"
        return alert, messages.sign_up_result(self.why, self.authenticator.minimum_password_length)


class LoginHandler(WhyInTemplates, native.LoginHandler):
    """/hub/login, a refusal said in Japanese: wrong name or password, waiting for approval, or locked for a while."""

    def _render(self, login_error=None, username=None):
        if login_error:
            self.why = self.refusal(username or "")
            login_error = messages.login_refused(self.why, username,
                                                 -(-self.authenticator.seconds_before_next_try // 60))
        return super()._render(login_error=login_error, username=username)

    def refusal(self, username):
        """Why the login of ``username`` with the password just sent was refused."""
        info = self.authenticator.get_user(username)
        password = self.get_body_argument("password", "", strip=False)
        if info is not None and not info.is_authorized and info.is_valid_password(password):
            return "waiting-for-approval"
        if info is not None and self.authenticator.is_blocked(username):
            return "locked"
        return "wrong-password"
