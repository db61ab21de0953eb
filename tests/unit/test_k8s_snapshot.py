"""Offline snapshots: which files are read, how documents and list items are found, where each
object came from, and how bad input is reported without stopping the rest."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from auditor import engine
from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.model import Status
from auditor.profiles import load_profile
from auditor.targets.kubernetes import RESOURCES
from auditor.targets.snapshot import MAX_FILE_BYTES, MAX_OBJECTS_ENV, SnapshotTarget

POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\n"
    "spec:\n  containers: [{{name: c, image: nginx}}]\n"
)
# Seven levels of ten aliases: three million nodes once expanded, from a few hundred bytes.
ALIAS_BOMB = (
    "a0: &a0 [1, 1]\n"
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7))
    + "kind: Pod\n"
)


def read(path: Path | str) -> SnapshotTarget:
    target = SnapshotTarget(TargetSpec(url=f"k8s-snapshot://{path}"))
    target.connect()
    return target


def listed(target: SnapshotTarget, plural: str) -> list[tuple[str, str | None]]:
    listing = target.list_objects(RESOURCES[plural])
    return [(o["metadata"]["name"], listing.location(i)) for i, o in enumerate(listing.items)]


def test_multi_document_yaml_with_comments_and_empty_documents(tmp_path):
    (tmp_path / "app.yaml").write_text(
        "# a comment\n---\n"
        + POD.format(name="one")
        + "---\n# only a comment\n---\n\n---\n"
        + POD.format(name="two")
    )
    target = read(tmp_path)
    assert listed(target, "pods") == [("one", "app.yaml:3"), ("two", "app.yaml:13")]
    assert target.problems() == []


def test_rendered_helm_output(tmp_path):
    rendered = textwrap.dedent(
        """\
        ---
        # Source: shop/templates/serviceaccount.yaml
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: shop
        ---
        # Source: shop/templates/service.yaml
        apiVersion: v1
        kind: Service
        metadata:
          name: shop
        spec:
          type: ClusterIP
        ---
        # Source: shop/templates/deployment.yaml
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: shop
        spec:
          template:
            spec:
              containers:
                - name: shop
                  image: "shop:1.0"
        """
    )
    target = read(_write(tmp_path / "rendered.yaml", rendered))
    assert listed(target, "deployments") == [("shop", "rendered.yaml:17")]
    assert listed(target, "services") == [("shop", "rendered.yaml:9")]
    assert listed(target, "serviceaccounts") == [("shop", "rendered.yaml:3")]


def test_kind_list_and_typed_list_dumps(tmp_path):
    dump = textwrap.dedent(
        """\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Namespace
          metadata: {name: shop}
        - null
        - apiVersion: apps/v1
          kind: Deployment
          metadata: {name: web, namespace: shop}
          spec: {template: {spec: {containers: []}}}
        ---
        apiVersion: v1
        kind: PodList
        items:
        - metadata: {name: raw, namespace: shop}
          spec: {containers: []}
        """
    )
    target = read(_write(tmp_path / "dump.yaml", dump))
    assert listed(target, "namespaces") == [("shop", "dump.yaml:4")]
    assert listed(target, "deployments") == [("web", "dump.yaml:8")]
    pods = target.list_objects(RESOURCES["pods"])
    assert [(p["kind"], p["apiVersion"]) for p in pods.items] == [("Pod", "v1")]
    assert pods.locations == ["dump.yaml:16"]


def test_kubectl_json_dump_keeps_the_line_of_every_item(tmp_path):
    dump = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "shop"}}
            for i in range(3)
        ],
    }
    text = json.dumps(dump, indent=4)
    target = read(_write(tmp_path / "all.json", text))
    lines = text.splitlines()
    found = listed(target, "pods")
    assert [name for name, _ in found] == ["p0", "p1", "p2"]
    for name, location in found:
        line = int(location.rpartition(":")[2])
        assert lines[line - 1].strip() == "{" and f'"{name}"' in "\n".join(lines[line : line + 6])


def _pods_dump(**extra: object) -> dict[str, object]:
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "shop"}}
        for i in range(4)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": pods, **extra}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps(_pods_dump(), indent=2), id="printed"),
        pytest.param(json.dumps(_pods_dump(), indent="\t"), id="tabs"),
        # another top-level list whose entries open at the items' indent: read entry by entry
        pytest.param(json.dumps(_pods_dump(notes=[{"a": 1}]), indent=2), id="decoy"),
        pytest.param(json.dumps(_pods_dump(score=float("nan")), indent=2), id="nan"),
        pytest.param(json.dumps(_pods_dump()), id="one-line"),
        pytest.param(json.dumps(_pods_dump(), indent=2).replace("\n", "\r\n"), id="crlf"),
    ],
)
def test_every_layout_of_a_json_list_dump_gives_the_line_of_each_item(tmp_path, text):
    lines = text.splitlines()
    expected = []
    for i in range(4):
        at = next(n for n, line in enumerate(lines) if f'"name": "p{i}"' in line)
        while at > 0 and lines[at].strip() != "{":
            at -= 1
        expected.append((f"p{i}", f"all.json:{at + 1}"))
    assert listed(read(_write(tmp_path / "all.json", text)), "pods") == expected


def test_concatenated_json_objects_and_single_line_json(tmp_path):
    text = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    text += "\n" + json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}})
    assert listed(read(_write(tmp_path / "ns.json", text)), "namespaces") == [
        ("a", "ns.json:1"),
        ("b", "ns.json:2"),
    ]


def test_directories_are_read_recursively_skipping_hidden_and_other_files(tmp_path):
    _write(tmp_path / "a" / "b" / "deep.yml", POD.format(name="deep"))
    _write(tmp_path / ".git" / "hidden.yaml", POD.format(name="hidden"))
    _write(tmp_path / "README.md", "not a manifest: {")
    _write(tmp_path / "chart" / "values.txt", "nope")
    target = read(tmp_path)
    assert listed(target, "pods") == [("deep", "a/b/deep.yml:1")]
    assert target.files == 1


def test_a_single_file_and_standard_input(tmp_path, monkeypatch):
    path = _write(tmp_path / "pod.yaml", POD.format(name="solo"))
    assert listed(read(path), "pods") == [("solo", "pod.yaml:1")]
    monkeypatch.setattr("sys.stdin", io.StringIO(POD.format(name="piped")))
    assert listed(read("-"), "pods") == [("piped", "<stdin>:1")]


def test_a_missing_path_is_a_target_error(tmp_path):
    with pytest.raises(TargetError, match="no such file or directory"):
        read(tmp_path / "missing")


def test_legacy_groups_count_but_look_alike_custom_resources_do_not(tmp_path):
    text = (
        "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\n---\n"
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: calico}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: real}\n---\n"
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: cert}\n"
    )
    target = read(_write(tmp_path / "mixed.yaml", text))
    assert [n for n, _ in listed(target, "deployments")] == ["old"]
    assert [n for n, _ in listed(target, "networkpolicies")] == ["real"]
    assert target.problems() == []  # custom resources are read and not audited


@pytest.mark.parametrize(
    ("content", "location", "reason"),
    [
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n", "bad.yaml:4", "not valid YAML"),
        ("apiVersion: v1\nmetadata: {name: nokind}\n", "bad.yaml:1", "document without kind"),
        (
            "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: typo}\n",
            "bad.yaml:1",
            "unknown kind 'Deploymnet' for apiVersion apps/v1",
        ),
        (
            "apiVersion: v2\nkind: Pod\nmetadata: {name: x}\n",
            "bad.yaml:1",
            "unknown apiVersion 'v2'",
        ),
        (
            "apiVersion: foo/v1\nkind: Widget\nmetadata: {name: x}\n",
            "bad.yaml:1",
            "unknown apiVersion 'foo/v1'",
        ),
        ("- just\n- a list\n", "bad.yaml:1", "not a Kubernetes object"),
        ('{"apiVersion": "v1", "kind": "Pod", }', "bad.json:1", "not valid JSON"),
        (ALIAS_BOMB, "bad.yaml:6", "aliases expand to more than 100000 nodes"),
        # issue 17: each of these took the whole target down (every check `error`)
        ('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "\\ud800"}}', "bad.json:1",
         "not valid JSON: a string holds a lone surrogate"),
        ('{"kind": "Pod", "spec": ' + "[" * 100_000 + "]" * 100_000 + "}", "bad.json:1",
         "not valid JSON: nested too deep"),
        # found by the fuzz test: Python refuses to convert an integer of 5,000 digits
        ('{"kind": "List", "items": [{"kind": "Pod", "spec": {"n": ' + "9" * 5000 + "}}]}",
         "bad.json:1", "not valid JSON: a number of more than 4,300 digits"),
        ("kind: Pod\nspec: " + "[" * 100_000 + "]" * 100_000 + "\n", "bad.yaml:2",
         "not valid YAML: nested deeper than 200 levels"),
        ("kind: Pod\nmetadata: {name: a}\nmetadata: {name: b}\n", "bad.yaml:3",
         "duplicate key 'metadata' (first on line 2)"),
    ],
)  # fmt: skip
def test_bad_input_is_a_problem_of_that_file_and_the_rest_is_read(
    tmp_path, content, location, reason
):
    name = location.split(":")[0]
    _write(tmp_path / name, content)
    _write(tmp_path / "good.yaml", POD.format(name="fine"))
    target = read(tmp_path)
    assert [n for n, _ in listed(target, "pods")] == ["fine"]
    problems = target.problems()
    assert len(problems) == 1, problems
    assert problems[0][0] == location
    assert reason in problems[0][1]


def test_a_yaml_error_keeps_the_documents_before_it(tmp_path):
    _write(tmp_path / "half.yaml", POD.format(name="before") + "---\nkind: [\n")
    target = read(tmp_path)
    assert [n for n, _ in listed(target, "pods")] == ["before"]
    assert target.problems()[0][0] == "half.yaml:8"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as handle:
        handle.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: ")
        chunk = "x" * 1_000_000
        for _ in range(52):  # 52 MB: over the 50 MB limit
            handle.write(chunk)
        handle.write("\n")
    assert big.stat().st_size > MAX_FILE_BYTES
    _write(tmp_path / "good.yaml", POD.format(name="fine"))
    target = read(tmp_path)
    assert [n for n, _ in listed(target, "pods")] == ["fine"]
    [(location, reason)] = target.problems()
    assert location == "big.yaml" and "over the 50000000-byte limit" in reason


def test_an_impossible_date_is_text_that_the_checks_read(tmp_path):
    """A YAML date such as 2024-13-45 is read as a string (Kubernetes' JSON has no dates)."""
    _write(tmp_path / "p.yaml", POD.format(name="dated").replace(
        "namespace: shop}", "namespace: shop, creationTimestamp: 2024-13-45}"))  # fmt: skip
    target = read(tmp_path)
    [pod] = target.list_objects(RESOURCES["pods"]).items
    assert pod["metadata"]["creationTimestamp"] == "2024-13-45"
    assert target.problems() == []


def test_a_symlink_out_of_the_snapshot_is_reported_and_not_followed(tmp_path):
    outside = _write(tmp_path / "outside" / "secret.yaml", POD.format(name="outside"))
    root = tmp_path / "snap"
    _write(root / "good.yaml", POD.format(name="fine"))
    (root / "link.yaml").symlink_to(outside)
    (root / "dir").symlink_to(outside.parent, target_is_directory=True)
    (root / "inside.yaml").symlink_to(root / "good.yaml")  # inside the root: read
    target = read(root)
    assert sorted(n for n, _ in listed(target, "pods")) == ["fine", "fine"]
    assert sorted(target.problems()) == [
        ("dir", f"symlink to {outside.parent}, outside the snapshot: skipped"),
        ("link.yaml", f"symlink to {outside}, outside the snapshot: skipped"),
    ]


@pytest.mark.timeout(20)
def test_a_fifo_in_a_snapshot_is_refused_without_waiting(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.yaml")
    _write(tmp_path / "good.yaml", POD.format(name="fine"))
    target = read(tmp_path)
    assert [n for n, _ in listed(target, "pods")] == ["fine"]
    assert target.problems() == [("pipe.yaml", "not a regular file (a FIFO)")]


def test_objects_past_the_cap_are_reported_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_OBJECTS_ENV, "3")
    owner = "ownerReferences: [{kind: ReplicaSet, name: r}]"
    owned = POD.format(name="owned").replace("namespace: shop}", f"namespace: shop, {owner}}}")
    _write(
        tmp_path / "a.yaml", "---\n".join([owned] + [POD.format(name=f"p{i}") for i in range(5)])
    )
    target = read(tmp_path)
    assert sorted(n for n, _ in listed(target, "pods")) == ["owned", "p0", "p1", "p2"]
    [(location, reason)] = target.problems()
    assert location == "a.yaml:25"  # p3, the fourth object without an owner
    assert reason.startswith("more than 3 objects without an owner: this one and those after it")


def test_problems_become_error_results_naming_file_and_line_and_the_rest_is_judged(tmp_path):
    _write(tmp_path / "broken.yaml", "apiVersion: v1\nmetadata: {name: nokind}\n")
    _write(
        tmp_path / "typo.yaml", "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: typo}\n"
    )
    _write(tmp_path / "good.yaml", POD.format(name="fine"))
    profile = load_profile()
    record = engine.collect(profile, TargetSpec(url=f"k8s-snapshot://{tmp_path}"))
    assert record.error is None
    results = engine.evaluate(profile, record, profile.variables)
    privileged = [r for r in results if r.check_id == "k8s.pod.no-privileged"]
    by_subject = {(r.subject.kind, r.subject.name): r for r in privileged}
    assert by_subject[("Pod", "shop/fine")].status is Status.PASS
    assert by_subject[("Pod", "shop/fine")].subject.location == "good.yaml:1"
    broken = by_subject[("File", "broken.yaml")]
    assert broken.status is Status.ERROR
    assert broken.message == "broken.yaml:1: document without kind"
    assert by_subject[("File", "typo.yaml")].message.startswith("typo.yaml:1: unknown kind")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
