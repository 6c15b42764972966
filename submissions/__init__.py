"""Challenge-format submission files: formats per edition and track, writer, validator."""

from submissions.formats import FORMATS, TRACKS, get_format
from submissions.validator import validate_submission
from submissions.writer import write_submission

__all__ = ["FORMATS", "TRACKS", "get_format", "validate_submission", "write_submission"]
