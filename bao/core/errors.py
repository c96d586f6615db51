"""The errors a stage reports as one line naming the file or parameter (``bao.stage.main``)."""


class ParamsError(ValueError):
    """A parameter is unknown, missing or has an impossible value (the message names it)."""


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file."""


class DownloadError(RuntimeError):
    """A download failed or its checksum did not match; the message names the URL or file."""


class CheckpointError(ValueError):
    """A weights file is missing or does not fit the model; the message names the file and keys."""


KNOWN = (ParamsError, DataError, DownloadError, CheckpointError)
