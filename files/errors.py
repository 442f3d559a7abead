"""Errors of the files package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, Forbidden, InvalidInput, NotFound


class FilesError(DoorstepError):
    """Root of the files package's errors."""


class InvalidFileInput(InvalidInput, FilesError):
    """A parameter of a files request breaks a rule (an unknown purpose, a bad ttl)."""


class UnsupportedFileType(InvalidInput, FilesError):
    """The content is not one of the types the purpose allows (checked from the bytes)."""

    code = "unsupported_file_type"


class CorruptFile(InvalidInput, FilesError):
    """The content claims a type but does not decode as one (truncated, damaged)."""

    code = "corrupt_file"


class HiddenContent(InvalidInput, FilesError):
    """A second file rides behind the first (a polyglot: an image with an archive or
    program appended, a document with data after its end)."""

    code = "hidden_content"


class ImageTooLarge(InvalidInput, FilesError):
    """The image has more pixels than may be decoded (a decompression bomb, or simply huge)."""

    code = "image_too_large"


class FileTooLarge(InvalidInput, FilesError):
    """More bytes than the purpose allows."""

    code = "file_too_large"


class FileNotFound(NotFound, FilesError):
    """No such file, or not visible to the caller."""

    code = "file_not_found"


class FileAttached(Conflict, FilesError):
    """The file is attached to something (a review, an application) and stays."""

    code = "file_attached"


class UploadNotAllowed(Forbidden, FilesError):
    """The caller's roles may not upload files of this purpose."""

    code = "upload_not_allowed"


class UploadLimit(FilesError):
    """Too many uploads in the window, or too many bytes stored."""

    kind = "rate_limited"
    code = "upload_limit"


class LinkExpired(FilesError):
    """A download link whose expiry has passed; ask for a new one."""

    kind = "not_found"  # the API answers 410 Gone (api/routes/files.py)
    code = "link_expired"


class BadSignature(Forbidden, FilesError):
    """A download link that was not issued by this server, or was changed."""

    code = "bad_signature"
