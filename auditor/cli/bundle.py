"""`auditor collect`, `auditor evaluate` and `auditor verify`: evidence bundles.

collect gathers facts only (no judgement) into a bundle with a manifest of sha256 hashes,
optionally signed; evaluate scores a bundle offline, against this or another profile
version; verify checks a bundle's hashes and signature without scoring it.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor import engine, runner
from auditor.cli.run import (
    DEFAULT_REPORTS,
    broker_dispatch,
    broker_options,
    check_target_variables,
    parse_vars,
    prepared_profile,
    profile_options,
    record_options,
    record_options_from,
    report_options,
    say,
    target_options,
    target_specs,
)
from auditor.config import Gates
from auditor.facts import utc_now
from auditor.model import Severity
from auditor.reporters import parse_requests
from auditor.runner import CollectedTargets, RunPlan
from auditor.sanitize import plain

if TYPE_CHECKING:  # cryptography is imported when a bundle command runs, not at start-up
    from auditor.bundle import Bundle


def trust_options(command: Any) -> Any:
    """--verify-key (repeatable) and --allow-untrusted: which signers a bundle may have."""
    command = click.option(
        "--allow-untrusted",
        is_flag=True,
        help="Read an unsigned bundle, or one signed by a key not trusted, and mark "
        "everything produced from it UNTRUSTED.",
    )(command)
    return click.option(
        "--verify-key",
        "verify_keys",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="KEY",
        help="A trusted Ed25519 public key (PEM or OpenSSH; repeatable), beside those of "
        "the trusted-keys file ($XDG_CONFIG_HOME/auditor/trusted-keys).",
    )(command)


def open_bundle(path: Path, verify_keys: tuple[Path, ...], allow_untrusted: bool) -> Bundle:
    """The bundle at `path`, verified against the keys given and the trusted-keys file; an
    untrusted one read (with allow_untrusted) is announced on stderr."""
    from auditor.bundle import load_public_key, load_trusted_keys, read_bundle, trusted_keys_file

    keys = [load_public_key(key) for key in verify_keys]
    keys += load_trusted_keys(trusted_keys_file())
    bundle = read_bundle(path, keys, allow_untrusted=allow_untrusted)
    if bundle.untrusted is not None:
        click.echo(
            f"auditor: warning: UNTRUSTED bundle {plain(str(path))}: {bundle.untrusted}", err=True
        )
    return bundle


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
@broker_options
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def collect(
    profile: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
    output: Path,
    sign_key: Path | None,
    concurrency: int,
    broker: str | None,
    answer_timeout: float,
    quiet: bool,
    **target_flags: Any,
) -> int:
    """Gather the facts the profile needs from targets into a bundle; judge nothing.

    The bundle can be scored later, elsewhere, with `auditor evaluate`. With --broker,
    `auditor worker` processes gather the facts and this process writes (and signs) the
    bundle.
    """
    from auditor.bundle import key_id, load_private_key, write_bundle
    from auditor.evidence_spool import EvidenceSpool

    loaded = prepared_profile(profile, overlays, parse_vars(variables))
    from auditor.collectors.image_layers import user_cache_url

    specs = [replace(s, layer_cache=user_cache_url()) for s in target_specs(target_flags)]
    check_target_variables(loaded, specs)
    key = load_private_key(sign_key) if sign_key is not None else None  # fail before collecting
    started = utc_now()

    evidence = EvidenceSpool()  # each target's facts wait on disk until the bundle is written

    def gather() -> list[Any]:
        if broker:
            from auditor.fleet.coordinator import collect as collect_by_workers

            dispatch = broker_dispatch(
                loaded, broker, answer_timeout, str(uuid.uuid4()), profile, overlays, variables
            )
            return collect_by_workers(specs, dispatch, keep=evidence.keep)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda spec: evidence.keep(engine.collect(loaded, spec)), specs))

    try:
        records = runner.in_background(gather)
    except KeyboardInterrupt:
        click.echo("auditor: interrupted: no bundle written", err=True)
        sys.stderr.flush()
        os._exit(130)  # collection threads in flight cannot be stopped; do not wait for them
    for record in records:
        if record.error:
            click.echo(f"auditor: {plain(record.name)}: {plain(record.error)}", err=True)
        elif not quiet:
            failed = sum(1 for f in record.facts if f.error)
            click.echo(
                f"collected {plain(record.name)}: {len(record.facts)} facts"
                + (f" ({failed} could not be collected)" if failed else ""),
                err=True,
            )
    with closing(evidence):
        manifest = write_bundle(
            output,
            loaded,
            list(zip(specs, records, strict=True)),
            sign_key=key,
            started_at=started,
            evidence=evidence,
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
@trust_options
@profile_options
@report_options
@record_options
def evaluate(
    bundle_path: Path,
    verify_keys: tuple[Path, ...],
    allow_untrusted: bool,
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

    The bundle is verified first (hashes, and a signature by a trusted key; --allow-untrusted
    reads it anyway and marks the run untrusted). Facts the profile needs but the bundle lacks
    make those checks `error`, never `pass`.
    """
    requests = parse_requests(reports or DEFAULT_REPORTS)
    bundle = open_bundle(bundle_path, verify_keys, allow_untrusted)
    loaded = prepared_profile(profile, overlays, parse_vars(variables))
    collected_for = bundle.manifest["profile"]
    if not quiet and (collected_for["id"], collected_for["version"]) != (
        loaded.id,
        loaded.version,
    ):
        click.echo(
            "auditor: note: collected for "
            + plain(f"{collected_for['id']} {collected_for['version']}")
            + f", evaluated with {loaded.id} {loaded.version}",
            err=True,
        )
    plan = RunPlan(
        reports=requests,
        record=record_options_from(record_flags),
        gates=Gates(fail_under, Severity(fail_on) if fail_on else None, min_coverage),
        quiet=quiet,
        extra={
            "bundle": bundle.summary(),
            **({"untrusted": bundle.untrusted} if bundle.untrusted is not None else {}),
        },
    )
    return int(runner.execute(loaded, CollectedTargets(bundle.records()), plan, say))


@click.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@trust_options
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def verify(
    bundle_path: Path, verify_keys: tuple[Path, ...], allow_untrusted: bool, fmt: str
) -> int:
    """Check a bundle: every member against the manifest's sha256, and a signature by a
    trusted key.

    Exit 0 when it verifies; exit 2 with one line saying what is wrong otherwise (with
    --allow-untrusted, an unsigned or untrusted bundle is reported as UNTRUSTED, exit 0).
    """
    bundle = open_bundle(bundle_path, verify_keys, allow_untrusted)
    if fmt == "json":
        click.echo(json.dumps(_verified(bundle), indent=1))
        return 0
    manifest = bundle.manifest
    if bundle.untrusted is not None:
        signed = f"UNTRUSTED: {bundle.untrusted}"
    else:
        signed = f"signed by trusted key {bundle.key_id}"
    click.echo(
        f"verified {plain(str(bundle_path))}: {len(manifest['targets'])} target(s), "
        f"{len(manifest['files'])} files match their sha256; {signed}\n"
        # the manifest is the bundle's text: shown, never obeyed
        + plain(
            f"collected {manifest['created_at']} by auditor {manifest['tool_version']} for "
            f"{manifest['profile']['id']} {manifest['profile']['version']}; "
            f"manifest sha256 {bundle.manifest_sha256}"
        )
    )
    return 0


def _verified(bundle: Bundle) -> dict[str, Any]:
    return {
        **bundle.summary(),
        "verified": True,
        "targets": [t["name"] for t in bundle.manifest["targets"]],
        "files": len(bundle.manifest["files"]),
    }
