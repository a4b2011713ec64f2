"""One root exception for everything streamssl raises on purpose."""


class StreamSSLError(Exception):
    """Root of all streamssl errors."""


class InputError(StreamSSLError):
    """A user-facing problem with input: a missing file, an empty stream, a bad setting.

    The command line prints these as one line, without a traceback.
    """
