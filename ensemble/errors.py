"""Typed errors. Library code raises these; the CLI turns each into a one-line message and exit code 2."""


class AffectEnsError(Exception):
    """Base of every error a user can cause with bad input; its message is one line, ready to print."""


class ContractError(AffectEnsError):
    """A prediction table breaks the data contract (columns, dtypes, ranges, keys, coverage)."""


class LabelsError(AffectEnsError):
    """An annotation file or folder does not match the ABAW format of the edition."""


class RegistryError(AffectEnsError):
    """An unknown or duplicate name in a registry of members or fusers."""


class DataError(AffectEnsError):
    """Frames, manifests or datasets on disk are missing or unreadable."""


class SubmissionError(AffectEnsError):
    """A submission cannot be written or does not pass validation."""


class NotFittedError(AffectEnsError):
    """A fuser or fusion is used before it was fitted (or loaded)."""


class OutputExistsError(AffectEnsError):
    """An output already exists and --force was not given."""


class MemberCheckError(AffectEnsError):
    """A member behaves on the split a fusion is applied to unlike on the split it was fitted on."""
