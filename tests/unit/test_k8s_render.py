"""Which directories of a snapshot are charts or Kustomizations to render, and which files
they own (not read again as manifests)."""

from __future__ import annotations

from pathlib import Path

from auditor.targets.render import renderables


def tree(root: Path, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(root / name for name in files)


def test_charts_subcharts_bases_and_plain_manifests(tmp_path):
    files = tree(
        tmp_path,
        {
            "charts/web/Chart.yaml": "name: web\n",
            "charts/web/templates/deployment.yaml": "kind: {{ .Values.kind }}\n",
            "charts/web/charts/cache/Chart.yaml": "name: cache\n",
            "charts/web/charts/cache/templates/sts.yaml": "x: {{ y }}\n",
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "base/deployment.yaml": "kind: Deployment\n",
            "common/namespace.yaml": "kind: Namespace\n",
            "overlays/prod/kustomization.yaml": (
                "resources: [../../base, ../../common/namespace.yaml,"
                " https://example.com/remote.yaml]\n"
            ),
            "overlays/dev/kustomization.yml": "bases: [../../base]\n",
            "plain/api.yaml": "kind: Deployment\n",
        },
    )
    found, owned = renderables(tmp_path, files)
    assert [(r.tool, r.directory.relative_to(tmp_path).as_posix()) for r in found] == [
        ("helm", "charts/web"),  # the subchart is rendered by its parent
        ("kustomize", "overlays/dev"),
        ("kustomize", "overlays/prod"),  # the base is rendered through both overlays
    ]
    unowned = sorted(f.relative_to(tmp_path).as_posix() for f in files if f not in owned)
    assert unowned == ["plain/api.yaml"]  # namespace.yaml is a resource of prod


def test_a_directory_without_either_renders_nothing(tmp_path):
    files = tree(tmp_path, {"a.yaml": "kind: Pod\n", "b/c.yaml": "kind: Pod\n"})
    assert renderables(tmp_path, files) == ([], set())


def test_an_unreadable_kustomization_is_left_to_kustomize(tmp_path):
    files = tree(tmp_path, {"kustomization.yaml": "resources: [\n"})
    found, owned = renderables(tmp_path, files)
    assert [r.tool for r in found] == ["kustomize"] and owned == set(files)
