"""The one exception type for mistakes a user can fix.

Library code raises :class:`UserError` with a one-line Japanese message that says what is wrong and how to fix it;
the CLI prints that line and exits with status 2 instead of showing a traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line of Japanese."""
