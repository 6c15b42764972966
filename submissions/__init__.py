"""Challenge-format submission files: layouts per edition and track, writer, validator.

The public names load their modules on first use, so ``submissions.formats`` stays cheap to import (the
command line reads its constants at start-up).
"""

from importlib import import_module

_HOMES = {
    "SubmissionReport": "submissions.writer",
    "write_submission": "submissions.writer",
    "ValidationReport": "submissions.validator",
    "validate_submission": "submissions.validator",
    "TrackFormat": "submissions.formats",
    "get_format": "submissions.formats",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'submissions' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
