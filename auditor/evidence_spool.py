"""A run's evidence kept on disk while the run lasts, not in the auditing process's memory.

A host's facts are hundreds of kilobytes; a run of 10,000 hosts that kept them all in memory
until its reports are written needs a machine of its own. The recorder hands each finished
target's facts to the spool, which appends each piece of evidence once (by sha256) to an
unlinked temporary file, as the canonical JSON text its hash is taken over, and keeps only
where it lies. The run's document holds the spool as its `evidence`: a read-only mapping of
sha256 to FactJson, read back from the file when a reporter shows a piece (the HTML's
excerpts, OSCAL's resources, drift) and streamed as it is into the JSON report
(document.write_json). The file is gone when the spool is closed or the process ends,
however it ends. Should the file fail (a full disk, no writable temporary directory), the
evidence stays in memory instead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import IO

from auditor.facts import canonical_json
from auditor.model import FactJson, TargetRecord

log = logging.getLogger(__name__)


class EvidenceSpool(Mapping[str, FactJson]):
    """sha256 -> FactJson, the texts in a temporary file. `keep` is thread-safe; reading
    comes after the last `keep`."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        try:  # held until close(): the spool lives as long as its run
            self._file = tempfile.TemporaryFile(prefix="auditor-evidence-")  # noqa: SIM115
        except OSError as exc:  # no writable temporary directory (a read-only container)
            log.warning("evidence kept in memory: no spool file: %s", exc)
        self._end = 0
        self._where: dict[str, tuple[int, int]] = {}  # sha256 -> (offset, length)
        self._held: dict[str, bytes] = {}  # what the file could not take
        self._lock = threading.Lock()

    def keep(self, record: TargetRecord) -> TargetRecord:
        """Spool the data of `record`'s facts; returns the record with its facts' data left
        out (each fact's sha256 says where it went)."""
        for fact in record.facts:
            if fact.error is None and fact.sha256 not in self:
                text = canonical_json(fact.data).encode("utf-8")
                with self._lock:
                    if fact.sha256 not in self:
                        self._spool(fact.sha256, text)
        facts = tuple(dataclasses.replace(fact, data=None) for fact in record.facts)
        return dataclasses.replace(record, facts=facts)

    def _spool(self, sha256: str, text: bytes) -> None:
        if self._file is None:
            self._held[sha256] = text
            return
        try:
            written = 0
            while written < len(text):
                written += os.pwrite(self._file.fileno(), text[written:], self._end + written)
        except OSError as exc:
            if not self._held:
                log.warning("evidence kept in memory: the spool file failed: %s", exc)
            self._held[sha256] = text
            return
        self._where[sha256] = (self._end, len(text))
        self._end += len(text)

    def raw(self, sha256: str) -> bytes:
        """The evidence's canonical JSON, as UTF-8 bytes."""
        held = self._held.get(sha256)
        if held is not None:
            return held
        offset, length = self._where[sha256]
        assert self._file is not None  # _where is filled only through it
        return os.pread(self._file.fileno(), length, offset)

    def __getitem__(self, sha256: str) -> FactJson:
        return FactJson(self.raw(sha256).decode("utf-8"))

    def __iter__(self) -> Iterator[str]:
        yield from self._where
        yield from self._held

    def __len__(self) -> int:
        return len(self._where) + len(self._held)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._where or sha256 in self._held

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
