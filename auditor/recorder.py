"""A run's life around the engine: waivers and attestations, the store, history, exports.

`auditor run` and `auditor evaluate` hand each finished target to `Recorder.target_done`,
which answers attested controls, applies waivers and hands the target at once to the
store's writer process (store_writer.py), which commits it. At the end `complete` (or,
after Ctrl-C / SIGTERM, `interrupted`) closes the run in the store and gives the results
document, with `history` and the waiver report; `export` then writes metrics and tells the
webhook about a regression.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor import __version__, document, engine
from auditor.attestations import AttestationSet, load_attestations
from auditor.errors import AuditorError
from auditor.evidence_spool import EvidenceSpool
from auditor.facts import utc_now
from auditor.model import Result, Run, TargetRecord
from auditor.profiles import LoadedProfile
from auditor.store_writer import StoreWriter, WriterError
from auditor.waivers import DEFAULT_WARNING_DAYS, WaiverSet, load_waivers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordOptions:
    """What happens to a run besides its reports: flags of `auditor run` and `evaluate`."""

    store: bool = True
    db: str | None = None  # None: AUDITOR_DB, then SQLite in the XDG data home
    waivers: Path | None = None
    attestations: Path | None = None
    warning_days: int = DEFAULT_WARNING_DAYS
    prometheus_file: Path | None = None
    pushgateway: str | None = None
    pushgateway_job: str = "auditor"
    webhook: str | None = None


class Recorder:
    """Records one run. Thread-safe: the engine calls target_done from its own thread."""

    def __init__(
        self,
        profile: LoadedProfile,
        target_names: Sequence[str],
        options: RecordOptions,
        *,
        source: str = "run",
        extra: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.profile = profile
        self.fixed_extra = dict(extra or {})  # e.g. `bundle`: where evaluated facts came from
        self.names = list(target_names)
        self.options = options
        self.now = datetime.now(UTC)  # one instant for every waiver and attestation decision
        self.waivers: WaiverSet | None = None
        self.attestations: AttestationSet | None = None
        if options.waivers is not None:
            self.waivers = load_waivers(options.waivers, self.now, options.warning_days)
        if options.attestations is not None:
            self.attestations = load_attestations(
                options.attestations, self.now, options.warning_days
            )
        self.started_at = utc_now()
        self.notes: list[str] = []
        self.run_id = run_id or str(uuid.uuid4())
        self.store_error: AuditorError | None = None
        self.done: dict[str, tuple[TargetRecord, list[Result]]] = {}  # facts without data
        self.evidence = EvidenceSpool()  # the facts' data, until the reports are written
        self.variables: dict[str, Mapping[str, Any]] = {}  # per target: what judged it
        self.audited_by: dict[str, str] = {}  # per target: the worker of a distributed run
        self._lock = threading.Lock()
        self._closed = False
        self.writer: StoreWriter | None = None
        if options.store:
            self._begin(source)

    def _begin(self, source: str) -> None:
        """Start the store's writer process and the run in the store. A store the user named
        must open before anything is audited; the default store opens while the first
        targets are, and may fail with a warning (a read-only home, a container)."""
        named = self.options.db or os.environ.get("AUDITOR_DB")
        self.writer = StoreWriter(named, debug=log.isEnabledFor(logging.DEBUG))
        catalog = document.catalog(self.profile)
        try:
            self.writer.begin_run(
                catalog,
                self.names,
                run_id=self.run_id,
                started_at=self.started_at,
                source=source,
                extra=self._extra(),
                wait=bool(named),
            )
        except AuditorError:
            self.close()
            raise

    def stored(self) -> bool:
        """Whether the run is stored (waits for the store to open). A default store that
        could not be opened becomes a warning here; a failure after it opened is raised by
        the writer's next answer."""
        if self.writer is None:
            return False
        try:
            self.writer.opened()
        except WriterError as exc:
            if not exc.opening:
                return True
            self.notes.append(f"this run is not stored: {exc} (set --db, or --no-store)")
            self.close()
            self.writer = None
            return False
        return True

    # --- during the run ----------------------------------------------------------------

    def process(self, results: Sequence[Result]) -> list[Result]:
        """Attestations answer manual results, then waivers apply: before any scoring."""
        out = list(results)
        if self.attestations is not None:
            out = self.attestations.apply(out)
        if self.waivers is not None:
            out = self.waivers.apply(out)
        return out

    def target_done(self, judged: engine.Judged) -> None:
        """Keep one finished target: processed, and handed to the store's writer at once."""
        record = judged.record
        with self._lock:
            if self._closed:
                return
            processed = self.process(judged.results)
            if self.writer is not None:
                self.writer.save_target(self.run_id, record, processed)
            self.done[record.name] = (self.evidence.keep(record), processed)
            self.variables[record.name] = judged.variables
            if judged.audited_by:
                self.audited_by[record.name] = judged.audited_by

    # --- at the end ------------------------------------------------------------------------

    def complete(self) -> dict[str, Any]:
        """Close a finished run; returns its results document."""
        return self._close(complete=True)

    def interrupted(self) -> dict[str, Any]:
        """Close a run cut short (Ctrl-C, SIGTERM): what finished is kept, marked incomplete."""
        return self._close(complete=False)

    def _close(self, *, complete: bool) -> dict[str, Any]:
        """The run's document; attested controls are answered here, once, for the kinds of
        target that finished."""
        with self._lock:
            self._closed = True
            order = {name: index for index, name in enumerate(self.names)}
            finished = sorted(self.done.values(), key=lambda d: order.get(d[0].name, len(order)))
            variables = dict(self.variables)
        kinds = {record.kind for record, _ in finished}
        org = self.process(engine.attestation_results(self.profile, kinds))
        results = [r for _, target_results in finished for r in target_results] + org
        run = Run(
            id=self.run_id,
            tool_version=__version__,
            profile_id=self.profile.id,
            profile_version=self.profile.version,
            started_at=self.started_at,
            finished_at=utc_now(),
            targets=tuple(record for record, _ in finished),
            results=tuple(results),
            complete=complete,
        )
        extra = {**self._extra(), "judged_with": document.judged_with(self.profile, variables)}
        doc = document.build(run, self.profile, evidence=self.evidence)
        doc.update(extra)
        if self.stored():
            assert self.writer is not None
            try:
                self.writer.save_results(self.run_id, org)
                self.writer.finish_run(self.run_id, complete, extra=extra, scores=doc["score"])
                doc["history"] = self.writer.history(self.names, before=self.run_id)
            except AuditorError as exc:  # the store failed: the run itself stands
                self.store_error = exc
        return doc

    def _extra(self) -> dict[str, Any]:
        """The document keys besides the results that the store keeps with the run."""
        extra: dict[str, Any] = dict(self.fixed_extra)
        if self.waivers is not None:
            extra["waivers"] = self.waivers.report()
        if self.attestations is not None:
            extra["attestations"] = self.attestations.report()
        if self.audited_by:
            extra["audited_by"] = dict(self.audited_by)
        return extra

    def warnings(self) -> list[str]:
        """Lines for the operator: expired, expiring and unused waivers and attestations."""
        lines: list[str] = list(self.notes)
        if self.attestations is not None:
            lines += self.attestations.warnings()
        if self.waivers is not None:
            lines += self.waivers.warnings()
        return lines

    def export(self, doc: dict[str, Any]) -> list[str]:
        """Metrics and the regression webhook; returns warnings (a failed export never fails
        the run: the audit itself is done and stored)."""
        problems: list[str] = []
        options = self.options
        if options.prometheus_file is not None or options.pushgateway is not None:
            from auditor import metrics  # prometheus_client: only for runs that export

            try:
                if options.prometheus_file is not None:
                    metrics.write_textfile(doc, options.prometheus_file)
                if options.pushgateway is not None:
                    metrics.push(doc, options.pushgateway, options.pushgateway_job)
            except metrics.MetricsError as exc:
                problems.append(str(exc))
        if options.webhook is not None:
            from auditor import notify  # an HTTP client: only for runs with a webhook

            try:
                notice = (
                    notify.regression(self._previous(), doc) if doc["run"]["complete"] else None
                )
                if notice is not None:
                    notify.post(options.webhook, notice)
            except AuditorError as exc:  # the webhook or the store: the run itself stands
                problems.append(str(exc))
        return problems

    def _previous(self) -> dict[str, Any] | None:
        if not self.stored():
            raise AuditorError("--webhook compares with the previous run: it needs the store")
        assert self.writer is not None
        previous = self.writer.previous_run(self.run_id)
        return self.writer.load_document(previous, history=0) if previous else None

    def close(self) -> None:
        """Stop the store's writer once it has written everything; drop the spooled
        evidence (the reports are written)."""
        self.evidence.close()
        if self.writer is not None:
            self.writer.close()
