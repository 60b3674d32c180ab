"""Proof that each hub test guards its weakness: take one defence of the hub out and the test must fail.

Each *mutant* below is the hub with one defence removed, as it was before that defence existed (the proxy's pid
file back in the hub's volume, a GET link that toggles an approval, ...). ``python tests/hub_mutants.py`` copies
this checkout, applies the mutants of one group, runs tests/test_hub.py on a real Docker engine there (as CI does,
without the notebook test) and checks that every test the group's mutants name failed. Mutants that do not disturb
each other's tests share a group (one engine run, about 6-10 minutes on 2 cores); taking the admin's account away
breaks the whole module's fixtures, so it runs alone.

    sudo python tests/hub_mutants.py            # every group, one engine run each
    sudo python tests/hub_mutants.py subdomain  # the groups of the mutants named

Not part of CI (three more engine runs); run it after changing the hub or its tests. Each edit must match the
current code exactly once, so a mutant that no longer applies says so instead of passing silently.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG, ACCOUNTS = "hub/jupyterhub_config.py", "mnist_lab_deploy/hub/accounts.py"

# name: (the edits [(file, old, new)], the tests of tests/test_hub.py that must fail without the defence)
MUTANTS = {
    "network": ([(CONFIG, "            await fence(self, await own_image(self), NETWORK, INTERNET, JUPYTER_PORT)\n",
                  "            pass  # MUTANT: no network fence\n")],
                ["test_a_students_server_reaches_the_hub_and_the_internet_and_nothing_else",
                 "test_the_internet_is_closed_when_the_admin_says_so"]),
    "disk": ([(CONFIG, "        self.stop_note = await WATCH.check(self)\n",
               "        self.stop_note = None  # MUTANT: no disk watcher, no reserve for the hub\n")],
             ["test_a_student_is_stopped_at_the_disk_quota_and_can_clean_up", "test_a_full_disk_leaves_the_hub_working"]),
    "pidfile": ([(CONFIG, 'c.ConfigurableHTTPProxy.pid_file = "/tmp/jupyterhub-proxy.pid"\n',
                  "# MUTANT: the proxy's pid file in the hub's volume (JupyterHub's default)\n")],
                ["test_the_hub_comes_back_after_a_sigkill_and_a_power_cut"]),
    "lockout": ([(ACCOUNTS, "        return username not in self.admin_users and super().is_blocked(username)\n",
                  "        return super().is_blocked(username)  # MUTANT: the admin can be locked out\n"),
                 (ACCOUNTS, "        if username not in self.admin_users:\n            super().add_login_attempt(username)\n",
                  "        super().add_login_attempt(username)  # MUTANT\n")],
                ["test_the_admin_cannot_be_impersonated_or_locked_out"]),
    "get-and-samesite": ([(ACCOUNTS, '        self.redirect(self.hub.base_url + "authorize#" + name)\n',
                           ('        self.redirect(self.hub.base_url + "authorize#" + name)\n\n'
                            "    get = post  # MUTANT: a GET link toggles an approval\n")),
                          (CONFIG, 'c.JupyterHub.tornado_settings = {"cookie_options": {"samesite": "Lax"}}\n',
                           "# MUTANT: cookies without SameSite\n")],
                         ["test_state_changes_need_a_post_with_xsrf_and_cookies_are_same_site"]),
    "messages": ([(CONFIG, "        raise messages.nvidia_smi_failed(e) from e\n",
                   "        raise RuntimeError(str(e)) from e  # MUTANT: JupyterHub's generic page\n"),
                  (CONFIG, "            raise messages.image_missing(image) from e\n", "            raise  # MUTANT\n")],
                 ["test_errors_reach_the_student_in_japanese_with_the_real_reason"]),
    "subdomain": ([(CONFIG, ('c.JupyterHub.subdomain_host = setting("HUB_URL", PARSERS["HUB_URL"]) or '
                             "f\"http://localhost:{setting('HUB_PORT', port)}\"\n"),
                    "# MUTANT: every student's server on the hub's origin\n")],
                  ["test_a_page_of_a_students_server_cannot_act_for_the_admin_on_the_hub"]),
    "revoke": ([(ACCOUNTS, "            await self.revoke(name)\n", "            pass  # MUTANT: nothing revoked\n"),
                (ACCOUNTS, "        info = self.get_user(user.name)\n        return info is not None and info.is_authorized\n",
                 "        return True  # MUTANT: sessions outlive the approval\n")],
               ["test_taking_back_an_approval_ends_the_students_tokens_and_server"]),
    "admin-by-signup": ([(ACCOUNTS, ('        if info is None:\n            info = UserInfo(username=name, password=b"", '
                                     "is_authorized=True)\n            self.db.add(info)\n"),
                          ("        if info is None:  # MUTANT: whoever signs up first with the name is the admin\n"
                           "            return\n"))],
                        # the stranger's sign-up now owns the name: the admin's password fails from the first fixture
                        ["test_the_admin_cannot_be_impersonated_or_locked_out"]),
}
# "lockout" locks the admin out, so "revoke" (the admin takes an approval back) runs beside "subdomain" instead.
GROUPS = [("network", "disk", "pidfile", "lockout", "get-and-samesite", "messages"), ("subdomain", "revoke"),
          ("admin-by-signup",)]


def mutate(root, names):
    """Apply the mutants ``names`` to the checkout at ``root``; each edit must match exactly once."""
    for name in names:
        for path, old, new in MUTANTS[name][0]:
            text = (root / path).read_text()
            if text.count(old) != 1:
                sys.exit(f"mutant {name}: the code it edits in {path} has changed; update tests/hub_mutants.py")
            (root / path).write_text(text.replace(old, new))


def outcomes(report):
    """{test name: "PASSED" / "FAILED" / "ERROR"} from pytest's ``-rA`` summary."""
    found = {}
    for state, name in re.findall(r"^(PASSED|FAILED|ERROR) tests/test_hub\.py::(\w+)", report, re.MULTILINE):
        found[name] = "FAILED" if state == "ERROR" else found.get(name, state)
    return found


def run_group(names):
    """Run the hub tests on a copy of this checkout with ``names`` applied; return the mutants that went unseen."""
    with tempfile.TemporaryDirectory(prefix="hub-mutant-") as tmp:
        copy = Path(tmp) / "repo"
        subprocess.run(["git", "worktree", "add", "--detach", "-f", copy, "HEAD"], cwd=REPO, check=True,
                       capture_output=True)
        try:
            for name in subprocess.run(["git", "ls-files", "-m", "-o", "--exclude-standard"], cwd=REPO,
                                       capture_output=True, text=True, check=True).stdout.splitlines():
                if (REPO / name).is_file():  # what is not committed yet is what is being checked
                    (copy / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / name, copy / name)
            mutate(copy, names)
            result = subprocess.run([sys.executable, "-m", "pytest", "tests/test_hub.py", "-k", "not notebook_runs",
                                     "-p", "no:cacheprovider", "-rA", "-q"], cwd=copy, capture_output=True, text=True, check=False,
                                    env={**os.environ, "PYTHONPATH": str(copy), "CI": "true"})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", copy], cwd=REPO, check=False)
    seen = outcomes(result.stdout)
    unseen = []
    for name in names:
        states = {test: seen.get(test, "not run") for test in MUTANTS[name][1]}
        caught = all(state == "FAILED" for state in states.values())
        print(f"{name:17} {'caught' if caught else 'NOT CAUGHT'}: {states}")
        unseen += [] if caught else [name]
    return unseen


def main(asked):
    unknown = set(asked) - set(MUTANTS)
    if unknown:
        sys.exit(f"unknown mutants {sorted(unknown)}; known: {', '.join(MUTANTS)}")
    unseen = []
    for group in GROUPS:
        if not asked or set(group) & set(asked):
            unseen += run_group(group)
    sys.exit(f"mutants no test caught: {unseen}" if unseen else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
