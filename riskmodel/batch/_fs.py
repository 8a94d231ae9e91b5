"""Files at any URI Hadoop reaches (``file://``, ``hdfs://``, ``s3a://``, ``abfss://``,
``gs://``, ...), through the Hadoop ``FileSystem`` API of a Spark session's JVM: the Spark
engine's work folder (its state and markers) and the publication of the final output.

The driver uses it through the JVM gateway (``spark._jvm``), so it needs no Python
client for the storage: whatever Spark itself can read and write, this can. The Python
workers on the executors never touch storage directly; they see it only through Spark's
readers and writers.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import struct
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FileInfo", "HadoopFS", "is_hidden", "join"]


class FileInfo(NamedTuple):
    """A file as :meth:`HadoopFS.files` lists it."""

    uri: str  #: the full URI, as Hadoop writes it
    path: str  #: its path (decoded), what Spark's ``_metadata.file_path`` decodes to
    rel: str  #: its path below the listed folder
    size: int
    mtime: int  #: modification time, ms


def join(uri: str, *names: str) -> str:
    """``uri/name/...`` (URIs are joined as text: ``pathlib`` would fold ``//``)."""
    return "/".join([uri.rstrip("/"), *names])


def is_hidden(name: str) -> bool:
    """Files Spark and pyarrow skip in a dataset folder (``_SUCCESS``, ``.crc``, ...)."""
    return name.startswith(("_", "."))


class HadoopFS:
    """One Hadoop ``FileSystem`` instance for the file system of ``uri`` (a private instance,
    not Hadoop's shared cache, so that switching checksum files off does not touch Spark's).

    Parameters
    ----------
    spark : SparkSession
    uri : str
        Any path or URI on the file system wanted; a path without a scheme is on Hadoop's
        default file system (``fs.defaultFS``: the local disk for ``local[...]`` masters,
        usually HDFS on a cluster), as it is for Spark's own readers.
    """

    def __init__(self, spark, uri: str):
        self._jvm = spark._jvm
        self._hadoop = self._jvm.org.apache.hadoop.fs
        conf = spark._jsc.hadoopConfiguration()
        self._fs = self._hadoop.FileSystem.newInstance(self._path(uri).toUri(), conf)
        # the local file system writes a .crc beside every file: not in a published output
        self._fs.setWriteChecksum(False)

    def _path(self, uri: str):
        return self._hadoop.Path(str(uri))

    def qualify(self, uri: str) -> str:
        """The full URI of ``uri`` (scheme, authority, absolute path)."""
        return str(self._fs.makeQualified(self._path(uri)).toString())

    def parent(self, uri: str) -> str:
        return str(self._path(uri).getParent().toString())

    def name(self, uri: str) -> str:
        return str(self._path(uri).getName())

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def is_dir(self, uri: str) -> bool:
        return self.exists(uri) and bool(self._fs.getFileStatus(self._path(uri)).isDirectory())

    def mkdirs(self, uri: str) -> None:
        if not self._fs.mkdirs(self._path(uri)):
            raise OSError(f"could not create the folder {uri}")

    def delete(self, uri: str) -> None:
        """Delete a file or a folder with everything in it (nothing if it does not exist)."""
        if self.exists(uri):
            self._fs.delete(self._path(uri), True)

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, which must not exist (Hadoop would move ``src`` into it)."""
        if self.exists(dst):
            raise OSError(f"cannot rename {src} to {dst}: it exists")
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def list(self, uri: str) -> list[str]:
        """Names in the folder ``uri``, sorted."""
        return sorted(str(s.getPath().getName()) for s in self._fs.listStatus(self._path(uri)))

    def files(self, uri: str) -> list[FileInfo]:
        """Every visible file under ``uri`` (``uri`` itself if it is a file), sorted by path:
        the files pyarrow's and Spark's dataset readers read, in pyarrow's order."""
        root = str(self._fs.makeQualified(self._path(uri)).toUri().getPath()).rstrip("/")
        found = []
        listing = self._fs.listFiles(self._path(uri), True)
        while listing.hasNext():
            status = listing.next()
            path = str(status.getPath().toUri().getPath())
            rel = posixpath.relpath(path, root) if path != root else posixpath.basename(path)
            if path != root and any(is_hidden(part) for part in rel.split("/")):
                continue
            found.append(FileInfo(str(status.getPath().toString()), path, rel, int(status.getLen()),
                                  int(status.getModificationTime())))
        return sorted(found, key=lambda f: f.path)

    def fingerprint(self, uri: str) -> str:
        """Names, sizes and modification times of the files under ``uri``: a changed,
        added or removed file changes it (as :func:`~riskmodel.batch._inputs.file_fingerprint`
        does for a local path)."""
        h = hashlib.sha256()
        for f in self.files(uri):
            h.update(f"{f.rel}|{f.size}|{f.mtime}\n".encode())
        return f"files:{h.hexdigest()[:24]}"

    def read_bytes(self, uri: str, offset: int = 0, size: int | None = None) -> bytes:
        io_utils = self._jvm.org.apache.commons.io.IOUtils
        stream = self._fs.open(self._path(uri))
        try:
            if offset:
                stream.seek(offset)
            return bytes(io_utils.toByteArray(stream) if size is None else io_utils.toByteArray(stream, size))
        finally:
            stream.close()

    def read_json(self, uri: str):
        return json.loads(self.read_bytes(uri).decode("utf-8"))

    def write_json(self, uri: str, value) -> None:
        """Write ``value`` as JSON under a temporary name, then rename it onto ``uri``."""
        tmp = join(self.parent(uri), f".{self.name(uri)}.partial")
        stream = self._fs.create(self._path(tmp), True)
        try:
            stream.write(bytearray(json.dumps(value, indent=1, default=str).encode("utf-8")))
        finally:
            stream.close()
        self.delete(uri)
        self.rename(tmp, uri)

    def upload(self, local: Path, uri: str) -> None:
        """Copy the local file or folder ``local`` (on the driver's disk) to ``uri``."""
        self._fs.copyFromLocalFile(False, True, self._path(Path(local).resolve().as_uri()), self._path(uri))

    def parquet_schema(self, uri: str) -> pa.Schema:
        """The Arrow schema pyarrow reads from the parquet file ``uri``: only its footer is
        read (the last bytes of the file), whatever the file system."""
        size = int(self._fs.getFileStatus(self._path(uri)).getLen())
        tail = self.read_bytes(uri, size - 8, 8)
        if size < 12 or tail[4:] != b"PAR1":
            raise ValueError(f"{uri} is not a parquet file")
        length = struct.unpack("<i", tail[:4])[0]
        footer = self.read_bytes(uri, size - 8 - length, length)
        return pq.read_schema(pa.BufferReader(b"PAR1" + footer + tail))

    def close(self) -> None:
        self._fs.close()
