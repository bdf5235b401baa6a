"""Where import rows come from: a local file or an object on S3-compatible storage (AWS S3,
Yandex Object Storage), and where the rejects file goes (next to it)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO


class ImportFailed(RuntimeError):
    """The import cannot go on (unreadable source, queue or store down). What was applied stays
    applied; re-running the file is safe (it is deduplicated)."""


class Source(ABC):
    """Where the rows come from, and where the rejects file goes (next to it)."""

    uri: str
    size: int | None = None
    modified: datetime | None = None

    @abstractmethod
    def open(self) -> BinaryIO: ...

    @property
    def rejects_uri(self) -> str:
        return self.uri + ".rejects.csv"

    @abstractmethod
    def put_rejects(self, local_path: Path) -> str:
        """Store the finished rejects file next to the source; returns where it went."""


class LocalSource(Source):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ImportFailed(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        if not self.path.is_file():
            raise ImportFailed(f"{path} is not a file")
        self.uri = str(self.path.resolve())
        self.size = stat.st_size
        self.modified = datetime.fromtimestamp(stat.st_mtime, UTC)

    def open(self) -> BinaryIO:
        return self.path.open("rb")

    @property
    def rejects_uri(self) -> str:
        return str(self.path) + ".rejects.csv"

    def put_rejects(self, local_path: Path) -> str:
        os.replace(local_path, self.rejects_uri)
        return self.rejects_uri


class S3Source(Source):
    """``s3://bucket/key`` through boto3; ``endpoint_url`` for Yandex Object Storage
    (``https://storage.yandexcloud.net``) or any S3-compatible server. Credentials come from
    the usual AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, roles)."""

    def __init__(self, uri: str, endpoint_url: str | None = None, client: Any = None) -> None:
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key:
            raise ImportFailed("an S3 source is s3://<bucket>/<key>")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client, self.bucket, self.key, self.uri = client, bucket, key, uri
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise ImportFailed(f"cannot read {uri}: {_s3_error(exc)}") from None
        self.size = int(head.get("ContentLength") or 0) or None
        self.modified = head.get("LastModified")

    def open(self) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except Exception as exc:
            raise ImportFailed(f"cannot read {self.uri}: {_s3_error(exc)}") from None

    def put_rejects(self, local_path: Path) -> str:
        key = self.key + ".rejects.csv"
        try:
            self.client.upload_file(str(local_path), self.bucket, key, ExtraArgs={"ContentType": "text/csv"})
        except Exception as exc:
            raise ImportFailed(f"cannot write s3://{self.bucket}/{key}: {_s3_error(exc)}") from None
        finally:
            local_path.unlink(missing_ok=True)
        return f"s3://{self.bucket}/{key}"


def _s3_error(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return f"{type(exc).__name__}{f' ({code})' if code else ''}"


def open_source(uri: str, endpoint_url: str | None = None) -> Source:
    if uri.startswith("s3://"):
        return S3Source(uri, endpoint_url)
    return LocalSource(uri[len("file://") :] if uri.startswith("file://") else uri)


# --- reading rows -----------------------------------------------------------------------------
