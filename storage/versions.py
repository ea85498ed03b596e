"""Object versions: this service has no versioning, so every object has one version, ``null``.

What S3 answers for a bucket that was never versioned: ListObjectVersions lists each object as its
``null`` version, and ``?versionId=null`` (or a DeleteObjects entry's ``<VersionId>null``) means the
object itself.  Any other version id names no version.  Turning versioning on is refused.
"""

from __future__ import annotations

from resilin.storage.errors import S3Error, invalid_argument


def check_null_version(version_id: str) -> None:
    """NoSuchVersion for any version but ``null`` (InvalidArgument for an empty one)."""
    if version_id == "":
        raise invalid_argument("Version id cannot be the empty string", "versionId", version_id)
    if version_id != "null":
        raise S3Error(
            "NoSuchVersion", "The specified version does not exist.", 404, extra={"VersionId": version_id}
        )
