"""S3 errors: a code, an HTTP status and a message, rendered as S3's XML error body."""

from __future__ import annotations

from resilin.aws.errors import AwsError


class S3Error(AwsError):
    """An error answered to the client with S3's code and status.

    ``extra`` holds additional XML elements S3 puts in some error bodies
    (BucketName, Key, ...) and ``headers`` response headers the error needs
    (Content-Range for InvalidRange, for instance).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code, status)
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, extra={"BucketName": bucket})


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, extra={"Key": key})


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
        "aborted or completed.",
        404,
        extra={"UploadId": upload_id},
    )


def access_denied(message: str = "Access Denied") -> S3Error:
    return S3Error("AccessDenied", message, 403)


def invalid_argument(message: str, name: str = "", value: str = "") -> S3Error:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return S3Error("InvalidArgument", message, 400, extra=extra)


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


def malformed_xml() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"{what} is not implemented by this server", 501)


def method_not_allowed(method: str, resource_type: str) -> S3Error:
    return S3Error(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        405,
        extra={"Method": method, "ResourceType": resource_type},
    )


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        extra={"Condition": condition},
    )


def internal_error() -> S3Error:
    return S3Error("InternalError", "We encountered an internal error. Please try again.", 500)
