"""`auditor collect`, `auditor evaluate` and `auditor verify`: evidence bundles.

collect gathers facts only (no judgement) into a bundle with a manifest of sha256 hashes,
optionally signed; evaluate scores a bundle offline, against this or another profile
version; verify checks a bundle's hashes and signature without scoring it.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor import engine
from auditor.cli.run import (
    DEFAULT_REPORTS,
    _exit_status,
    _in_background,
    _parse_var,
    check_target_variables,
    finish_reports,
    prepared_profile,
    profile_options,
    record_options,
    record_options_from,
    report_options,
    target_options,
    target_specs,
)
from auditor.config import Gates
from auditor.facts import utc_now
from auditor.model import Run, Severity
from auditor.recorder import Recorder
from auditor.reporters import ReportRequest

if TYPE_CHECKING:  # cryptography is imported when a bundle command runs, not at start-up
    from auditor.bundle import Bundle

verify_key_option = click.option(
    "--verify-key",
    type=click.Path(path_type=Path),
    metavar="KEY",
    help="Ed25519 public key (PEM or OpenSSH): the bundle must be signed by it.",
)


@click.command()
@target_options
@profile_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The bundle to write (.tar.gz).",
)
@click.option(
    "--sign-key",
    type=click.Path(path_type=Path),
    metavar="KEY",
    help="Sign the manifest with this Ed25519 private key (PEM or OpenSSH).",
)
@click.option(
    "-c",
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    envvar="AUDITOR_CONCURRENCY",
    help="Targets collected at once.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def collect(
    targets: tuple[str, ...],
    inventory: Path | None,
    profile: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
    output: Path,
    sign_key: Path | None,
    concurrency: int,
    user: str | None,
    identities: tuple[Path, ...],
    sudo: bool,
    known_hosts: Path | None,
    accept_new_host_keys: bool,
    ssh_config: Path | None,
    connect_timeout: float,
    command_timeout: float,
    imports: tuple[str, ...],
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    quiet: bool,
) -> int:
    """Gather the facts the profile needs from targets into a bundle; judge nothing.

    The bundle can be scored later, elsewhere, with `auditor evaluate`.
    """
    from auditor.bundle import key_id, load_private_key, write_bundle

    loaded = prepared_profile(profile, overlays, dict(_parse_var(v) for v in variables))
    specs = target_specs(
        targets,
        inventory,
        user,
        identities,
        sudo,
        known_hosts,
        accept_new_host_keys,
        ssh_config,
        connect_timeout,
        command_timeout,
        imports,
        (tls_ca, tls_cert, tls_key),
    )
    check_target_variables(loaded, specs)
    key = load_private_key(sign_key) if sign_key is not None else None  # fail before collecting
    started = utc_now()

    def gather() -> list[Any]:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda spec: engine.collect(loaded, spec), specs))

    try:
        records = _in_background(gather)
    except KeyboardInterrupt:
        click.echo("auditor: interrupted: no bundle written", err=True)
        sys.stderr.flush()
        os._exit(130)  # collection threads in flight cannot be stopped; do not wait for them
    for record in records:
        if record.error:
            click.echo(f"auditor: {record.name}: {record.error}", err=True)
        elif not quiet:
            failed = sum(1 for f in record.facts if f.error)
            click.echo(
                f"collected {record.name}: {len(record.facts)} facts"
                + (f" ({failed} could not be collected)" if failed else ""),
                err=True,
            )
    manifest = write_bundle(
        output, loaded, list(zip(specs, records, strict=True)), sign_key=key, started_at=started
    )
    if not quiet:
        signed = f", signed by key {key_id(key.public_key())}" if key is not None else ""
        click.echo(
            f"wrote bundle {output}: {len(records)} target(s), {len(manifest['files'])} files"
            f"{signed}",
            err=True,
        )
    return 3 if records and all(r.error for r in records) else 0


@click.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@verify_key_option
@profile_options
@report_options
@record_options
def evaluate(
    bundle_path: Path,
    verify_key: Path | None,
    profile: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
    reports: tuple[str, ...],
    fail_under: float | None,
    fail_on: str | None,
    min_coverage: float | None,
    quiet: bool,
    **record_flags: Any,
) -> int:
    """Score a bundle offline, with this or another profile version, as `auditor run` would.

    The bundle is verified first (hashes, and the signature when present or required).
    Facts the profile needs but the bundle lacks make those checks `error`, never `pass`.
    """
    from auditor.bundle import load_public_key, read_bundle

    requests = [ReportRequest.parse(r) for r in (reports or DEFAULT_REPORTS)]
    key = load_public_key(verify_key) if verify_key is not None else None
    bundle = read_bundle(bundle_path, key)
    loaded = prepared_profile(profile, overlays, dict(_parse_var(v) for v in variables))
    collected_for = bundle.manifest["profile"]
    if not quiet and (collected_for["id"], collected_for["version"]) != (
        loaded.id,
        loaded.version,
    ):
        click.echo(
            f"auditor: note: collected for {collected_for['id']} {collected_for['version']}, "
            f"evaluated with {loaded.id} {loaded.version}",
            err=True,
        )
    targets = bundle.records()
    recorder = Recorder(
        loaded,
        [record.name for record, _ in targets],
        record_options_from(record_flags),
        source="evaluate",
        extra={"bundle": bundle.summary()},
    )
    try:
        for record, target_vars in targets:
            results = engine.evaluate(loaded, record, {**loaded.variables, **target_vars})
            recorder.target_done(record, results)
        organisation = engine.attestation_results(loaded, {record.kind for record, _ in targets})
        finished = Run(
            id=recorder.run_id,
            tool_version=bundle.manifest["tool_version"],
            profile_id=loaded.id,
            profile_version=loaded.version,
            started_at=recorder.started_at,
            finished_at=utc_now(),
            targets=tuple(record for record, _ in targets),
            results=tuple(organisation),
        )
        doc = recorder.complete(finished)
        finish_reports(recorder, doc, requests, quiet=quiet)
    finally:
        recorder.close()
    gates = Gates(fail_under, Severity(fail_on) if fail_on else None, min_coverage)
    return int(_exit_status(doc, gates))


@click.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@verify_key_option
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def verify(bundle_path: Path, verify_key: Path | None, fmt: str) -> int:
    """Check a bundle: every member against the manifest's sha256, and the signature.

    Exit 0 when it verifies; exit 2 with one line saying what is wrong otherwise.
    """
    from auditor.bundle import load_public_key, read_bundle

    key = load_public_key(verify_key) if verify_key is not None else None
    bundle = read_bundle(bundle_path, key)
    if fmt == "json":
        click.echo(json.dumps(_verified(bundle), indent=1))
        return 0
    manifest = bundle.manifest
    if bundle.key_id is None:
        signed = "unsigned"
    elif bundle.trusted:
        signed = f"signed by key {bundle.key_id} (the key given)"
    else:
        signed = f"signed by key {bundle.key_id} (not checked against a trusted key: --verify-key)"
    click.echo(
        f"verified {bundle_path}: {len(manifest['targets'])} target(s), "
        f"{len(manifest['files'])} files match their sha256; {signed}\n"
        f"collected {manifest['created_at']} by auditor {manifest['tool_version']} for "
        f"{manifest['profile']['id']} {manifest['profile']['version']}; "
        f"manifest sha256 {bundle.manifest_sha256}"
    )
    return 0


def _verified(bundle: Bundle) -> dict[str, Any]:
    return {
        **bundle.summary(),
        "verified": True,
        "targets": [t["name"] for t in bundle.manifest["targets"]],
        "files": len(bundle.manifest["files"]),
    }
