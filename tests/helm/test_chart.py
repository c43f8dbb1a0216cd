"""The Helm chart, checked offline: lint, render, schema-validate, and hold it to the code.

Rendered manifests are validated against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields fail) and the KubeRay resources against the schemas kept in
helm/crd-schemas/. Then the chart is compared with what the code really reads and serves:
COUNTERPOINT_* variables are Settings fields, probe paths are routes that exist, the Serve
config imports the real application builder, and secrets only ever come from Secrets.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from counterpoint.settings import Settings, setting_names
from tests.helm.helpers import CHART, PROD_VALUES, RELEASE, ROOT, run_helm

pytestmark = pytest.mark.helm

KUBE_VERSION = "1.35.0"
CRD_SCHEMAS = ROOT / "helm" / "crd-schemas"
IMPORT_PATH = "counterpoint.services.app:app_builder"
# Environment variables that carry secrets: they must come from a secretKeyRef.
SECRET_ENV = {
    "COUNTERPOINT_DATABASE_URL",
    "COUNTERPOINT_QDRANT_API_KEY",
    "COUNTERPOINT_ADMIN_KEY",
    "COUNTERPOINT_API_KEY",
    "COUNTERPOINT_REDIS_URL",
    "MLFLOW_BACKEND_STORE_URI",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


# --- walking the rendered manifests ----------------------------------------------------------


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, pod spec) of every pod template in a manifest, KubeRay's included."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield f"{kind}/{name}", spec["template"]["spec"]
    cluster = spec.get("rayClusterConfig") if kind == "RayService" else spec if kind == "RayCluster" else None
    if cluster:
        yield f"{kind}/{name}/head", cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"{kind}/{name}/{group['groupName']}", group["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def all_containers(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, pod spec, container) for every container of every pod template."""
    for doc in manifests:
        for label, pod in pod_specs(doc):
            for container in containers(pod):
                yield f"{label}/{container['name']}", pod, container


def find(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests if doc["kind"] == kind]


def serve_config(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (service,) = find(manifests, "RayService")
    return cast(dict[str, Any], yaml.safe_load(service["spec"]["serveConfigV2"]))


# --- what the code provides ------------------------------------------------------------------


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def source_text(package: str, subdir: str) -> str:
    """All Python source under a package's subdirectory, joined (to look for route strings)."""
    return "\n".join(
        p.read_text(errors="replace") for p in sorted((package_dir(package) / subdir).rglob("*.py"))
    )


@cache
def gateway_routes() -> frozenset[str]:
    """Paths of the gateway's FastAPI app. The routes only close over the core, so a stand-in
    with its settings and no registry or store is enough to build the app and list them."""
    from types import SimpleNamespace

    from counterpoint.services.gateway.app import api_routes, create_app
    from counterpoint.services.gateway.core import GatewayCore

    app = create_app(cast(GatewayCore, SimpleNamespace(settings=Settings(), registry=None, store=None)))
    return frozenset(route.path for route in api_routes(app))


def route_exists(component: str, path: str) -> bool:
    """Whether ``path`` is a health route the component's server really has."""
    if component == "gateway":
        return path in gateway_routes()
    if component == "ray":  # aiohttp routes of the Ray dashboard and its per-node agent
        return f'routes.get("{path}")' in source_text("ray", "dashboard")
    if component == "mlflow":
        return f'"{path}"' in source_text("mlflow", "server")
    if component == "streamlit":
        return f'"{path.lstrip("/")}"' in source_text("streamlit", "web/server")
    raise AssertionError(f"no known server for {component}")


# --- schemas ----------------------------------------------------------------------------------


@cache
def kuberay_validators() -> dict[str, jsonschema.protocols.Validator]:
    """Validators of the kept KubeRay schemas, resolving core types to kubernetes-validate's."""
    defs_file = (
        package_dir("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{KUBE_VERSION}-local-strict"
        / "_definitions.json"
    )
    resources = [Resource.from_contents(json.loads(defs_file.read_text()))]
    schemas = {}
    for path in sorted(CRD_SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        resources.append(Resource.from_contents(schema))
        schemas[schema["properties"]["kind"]["const"]] = schema
    registry: Registry = Registry().with_resources((str(r.id()), r) for r in resources)
    return {kind: jsonschema.Draft202012Validator(s, registry=registry) for kind, s in schemas.items()}


def kuberay_errors(doc: dict[str, Any]) -> list[str]:
    validator = kuberay_validators()[doc["kind"]]
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- lint and render --------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "production"])
def test_helm_lint_strict(helm: Path, helm_env: dict[str, str], chart_dir: Path, values: str) -> None:
    args = ["lint", "--strict", str(chart_dir)]
    if values == "production":
        args += ["-f", str(PROD_VALUES)]
    assert "0 chart(s) failed" in run_helm(helm, helm_env, *args)


def test_chart_declares_qdrant_dependency_with_condition() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (dep,) = (d for d in meta["dependencies"] if d["name"] == "qdrant")
    assert dep["repository"] == "https://qdrant.github.io/qdrant-helm"
    assert dep["condition"] == "qdrant.enabled"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(dep["version"])), "pin the Qdrant chart version"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["qdrant"]["enabled"] is True
    assert yaml.safe_load(PROD_VALUES.read_text())["qdrant"]["enabled"] is True


def test_chart_declares_valkey_for_the_shared_rate_limits() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (dep,) = (d for d in meta["dependencies"] if d["name"] == "valkey")
    assert (dep["repository"], dep["condition"]) == ("https://valkey.io/valkey-helm/", "valkey.enabled")
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(dep["version"])), "pin the Valkey chart version"
    assert yaml.safe_load((CHART / "values.yaml").read_text())["valkey"]["enabled"] is True
    assert yaml.safe_load(PROD_VALUES.read_text())["valkey"]["enabled"] is False  # a managed Redis there


def redis_refs(manifests: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Where the pods' COUNTERPOINT_REDIS_URL comes from: (Secret, key) pairs."""
    return {
        (env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
        for _label, _pod, container in all_containers(manifests)
        for env in container.get("env", [])
        if env["name"] == "COUNTERPOINT_REDIS_URL"
    }


def test_gateway_replicas_share_redis(
    rendered: dict[str, list[dict[str, Any]]], helm: Path, helm_env: dict[str, str], chart_dir: Path
) -> None:
    """Default: the bundled Valkey, through a Secret naming its Service; external: the given Secret.
    A gateway that scales past one replica without either is refused, as `counterpoint up` refuses it."""
    (cm,) = find(rendered["default"], "ConfigMap")
    assert cm["data"]["COUNTERPOINT_GATEWAY_REPLICAS"] == "2"  # the gateway's autoscaling max_replicas
    (secret,) = [d for d in find(rendered["default"], "Secret") if d["metadata"]["name"].endswith("-redis")]
    assert secret["stringData"]["url"] == f"redis://{RELEASE}-valkey:6379/0"
    assert redis_refs(rendered["default"]) == {(secret["metadata"]["name"], "url")}
    assert redis_refs(rendered["external"]) == {("redis-url", "url")}
    assert not [d for d in find(rendered["external"], "Secret") if d["metadata"]["name"].endswith("-redis")]
    base = [str(helm), "template", RELEASE, str(chart_dir), "--set", "valkey.enabled=false"]
    done = subprocess.run(base, capture_output=True, text=True, env=helm_env, timeout=120, check=False)
    assert done.returncode != 0 and "scales to 2 replicas" in done.stderr and "valkey.enabled" in done.stderr
    one = yaml.safe_load((CHART / "values.yaml").read_text())["serve"]["deployments"]
    for deployment in one:
        if deployment["name"] == "gateway":
            deployment["autoscaling_config"]["max_replicas"] = 1
    values = chart_dir.parent / "one-gateway.yaml"
    values.write_text(yaml.safe_dump({"serve": {"deployments": one}}))
    single = list(yaml.safe_load_all(run_helm(helm, helm_env, *base[1:], "-f", str(values))))
    single = [d for d in single if d]
    assert redis_refs(single) == set()
    (cm,) = find(single, "ConfigMap")
    assert cm["data"]["COUNTERPOINT_GATEWAY_REPLICAS"] == "1"


def test_renders_every_part(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered["default"])
    for kind in ("RayService", "RayCluster", "ConfigMap", "ServiceAccount", "Ingress"):
        assert kind in kinds
    assert kinds.count("Deployment") == 2 and kinds.count("Service") == 2  # MLflow and the UI
    assert kinds.count("PodDisruptionBudget") == 4
    external = {doc["kind"] for doc in rendered["external"]}
    assert "RayCluster" not in external and "Deployment" not in external and "RayService" in external


def test_invalid_values_are_refused(helm: Path, helm_env: dict[str, str], chart_dir: Path) -> None:
    """values.schema.json stops typos, `latest` tags and inline secrets before rendering."""
    for bad in (
        "settings.embed_modle=x",
        "images.ray.tag=latest",
        "qdrant.apiKey=plain-text-key",
        "secrets.database.url=postgresql://u:p@h/db",
    ):
        args = [str(helm), "template", RELEASE, str(chart_dir), "--set", bad]
        done = subprocess.run(args, capture_output=True, text=True, env=helm_env, timeout=120, check=False)
        assert done.returncode != 0, f"--set {bad} was accepted"
        assert "schema" in done.stderr.lower(), done.stderr


# --- schema validation ------------------------------------------------------------------------


def test_kubernetes_manifests_are_valid(manifests: list[dict[str, Any]]) -> None:
    errors = []
    for doc in manifests:
        if doc["apiVersion"].startswith("ray.io/"):
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_kuberay_manifests_are_valid(manifests: list[dict[str, Any]]) -> None:
    docs = [doc for doc in manifests if doc["apiVersion"].startswith("ray.io/")]
    assert docs
    errors = [f"{d['kind']}/{d['metadata']['name']}: {e}" for d in docs for e in kuberay_errors(d)]
    assert not errors, "\n".join(errors)


def test_kuberay_schemas_reject_typos(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The kept schemas are closed where the chart renders, pod templates included."""
    (service,) = find(rendered["default"], "RayService")
    typos: list[tuple[str, Any]] = [
        ("spec", lambda d: d["spec"].update(serveConfigV3="")),
        ("rayClusterConfig", lambda d: d["spec"]["rayClusterConfig"].update(enableInTreeAutoscalng=True)),
        ("headGroupSpec", lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"].update(rayStartParam={})),
        (
            "workerGroupSpecs",
            lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(minReplica=1),
        ),
        (
            "autoscalerOptions",
            lambda d: d["spec"]["rayClusterConfig"]["autoscalerOptions"].update(idleTimeout=1),
        ),
        (
            "container",
            lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][
                0
            ].update(imagePullPolicyy="Always"),
        ),
        (
            "rayStartParams value",
            lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"].update(x=1),
        ),
    ]
    assert not kuberay_errors(service)
    for where, mutate in typos:
        broken = copy.deepcopy(service)
        mutate(broken)
        assert kuberay_errors(broken), f"a typo in {where} passed the RayService schema"


# --- the chart against the code ----------------------------------------------------------------


def counterpoint_env(manifests: list[dict[str, Any]]) -> dict[str, set[str]]:
    """COUNTERPOINT_* names each container gets (its env and the ConfigMaps of its envFrom)."""
    configmaps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in find(manifests, "ConfigMap")}
    out: dict[str, set[str]] = {}
    for label, _pod, container in all_containers(manifests):
        names = {env["name"] for env in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                assert ref in configmaps, (
                    f"{label}: envFrom names a ConfigMap the chart does not render: {ref}"
                )
                names |= set(configmaps[ref])
        out[label] = {n for n in names if n.startswith("COUNTERPOINT_")}
    return out


def test_counterpoint_env_vars_are_settings_fields(manifests: list[dict[str, Any]]) -> None:
    fields = setting_names()
    env = counterpoint_env(manifests)
    unknown = {f"{label}: {name}" for label, names in env.items() for name in names}
    unknown = {item for item in unknown if item.split(": COUNTERPOINT_")[1].lower() not in fields}
    assert not unknown, f"not fields of counterpoint.settings.Settings: {sorted(unknown)}"
    configmap_keys = {k for doc in find(manifests, "ConfigMap") for k in doc.get("data", {})}
    bad_keys = {k for k in configmap_keys if k.startswith("COUNTERPOINT_") and k[13:].lower() not in fields}
    assert not bad_keys


def test_values_schema_settings_are_settings_fields() -> None:
    """The settings the chart lets users set (values.schema.json) exist in Settings."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = set(schema["properties"]["settings"]["properties"])
    assert allowed <= setting_names(), allowed - setting_names()
    assert not allowed & {"database_url", "qdrant_api_key", "admin_key", "api_key"}, (
        "secrets must not be plain values"
    )


def test_platform_pods_get_the_settings_they_need(rendered: dict[str, list[dict[str, Any]]]) -> None:
    env = counterpoint_env(rendered["production"])
    needed = {
        "COUNTERPOINT_DATABASE_URL",
        "COUNTERPOINT_VECTOR_BACKEND",
        "COUNTERPOINT_QDRANT_URL",
        "COUNTERPOINT_QDRANT_API_KEY",
        "COUNTERPOINT_MLFLOW_TRACKING_URI",
        "COUNTERPOINT_RAY_ADDRESS",
        "COUNTERPOINT_DATA_DIR",
    }
    ray = {label: names for label, names in env.items() if label.startswith(("RayService", "RayCluster"))}
    assert ray
    for label, names in ray.items():
        assert needed <= names, f"{label} lacks {needed - names}"
    ui = [names for label, names in env.items() if label.endswith("/ui")]
    needs = {"COUNTERPOINT_API_URL", "COUNTERPOINT_API_KEY"}
    assert ui and all(names == needs for names in ui), "the UI needs only the API URL and its key"


def test_settings_values_parse(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The rendered ConfigMap, read as the pods read it, is a valid Settings object."""
    for name, manifests in rendered.items():
        (configmap,) = find(manifests, "ConfigMap")
        data = {k[13:].lower(): v for k, v in configmap["data"].items()}
        settings = Settings(_env_file=None, **data)  # type: ignore[call-arg]
        assert settings.vector_backend == "qdrant", name
        assert settings.qdrant_url and settings.qdrant_url.startswith("http"), name


def test_wiring_between_parts(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Addresses in the ConfigMap name the Services the chart (or KubeRay, or Qdrant) creates."""
    (cm,) = find(rendered["default"], "ConfigMap")
    data = cm["data"]
    (service,) = find(rendered["default"], "RayService")
    (cluster,) = find(rendered["default"], "RayCluster")
    name = service["metadata"]["name"]
    assert data["COUNTERPOINT_API_URL"] == f"http://{name}-serve-svc:8000"
    assert data["COUNTERPOINT_RAY_ADDRESS"] == f"http://{cluster['metadata']['name']}-head-svc:8265"
    assert data["COUNTERPOINT_QDRANT_URL"] == f"http://{RELEASE}-qdrant:6333"
    services = {doc["metadata"]["name"]: doc for doc in find(rendered["default"], "Service")}
    mlflow_host = data["COUNTERPOINT_MLFLOW_TRACKING_URI"].removeprefix("http://").split(":")[0]
    assert mlflow_host in services
    backends = {
        p["backend"]["service"]["name"]
        for rule in find(rendered["default"], "Ingress")[0]["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert backends == {f"{name}-serve-svc", *services}
    (ext,) = find(rendered["external"], "ConfigMap")
    assert ext["data"]["COUNTERPOINT_QDRANT_URL"] == "http://qdrant.example.com:6333"
    assert ext["data"]["COUNTERPOINT_RAY_ADDRESS"] == "http://ray-head.example.com:8265"
    assert ext["data"]["COUNTERPOINT_MLFLOW_TRACKING_URI"] == "http://mlflow.example.com:5000"


def test_probe_paths_exist(manifests: list[dict[str, Any]]) -> None:
    """Every HTTP probe asks a route its server really has, on a port the container opens."""
    checked = 0
    for label, _pod, container in all_containers(manifests):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        probes = [container.get(k) for k in ("readinessProbe", "livenessProbe", "startupProbe")]
        assert container.get("readinessProbe") and container.get("livenessProbe"), f"{label}: no probes"
        for probe in filter(None, probes):
            http = probe.get("httpGet")
            assert http, f"{label}: probes should be HTTP checks of a health route"
            port = ports.get(http["port"], http["port"])
            assert port in ports.values(), (
                f"{label}: probe on port {http['port']}, which the container does not open"
            )
            if container["name"] == "mlflow":
                component = "mlflow"
            elif container["name"] == "ui":
                component = "streamlit"
            elif port == ports.get("serve"):
                component = "gateway"
            else:
                component = "ray"
            assert route_exists(component, http["path"]), f"{label}: {component} has no route {http['path']}"
            checked += 1
    assert checked


def test_gateway_health_probe_is_the_real_route() -> None:
    assert "/healthz" in gateway_routes()


def test_images_are_pinned(manifests: list[dict[str, Any]]) -> None:
    for label, _pod, container in all_containers(manifests):
        image = container["image"]
        if "@sha256:" in image:
            assert re.search(r"@sha256:[a-f0-9]{64}$", image), f"{label}: malformed digest {image}"
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{label}: {image} has no tag"
        assert tag != "latest", f"{label}: {image} uses latest"


def test_no_container_runs_as_root(manifests: list[dict[str, Any]]) -> None:
    for label, pod, container in all_containers(manifests):
        pod_ctx = pod.get("securityContext", {})
        ctx = {**pod_ctx, **container.get("securityContext", {})}
        assert ctx.get("runAsNonRoot") is True, f"{label}: runAsNonRoot is not true"
        assert ctx.get("runAsUser", 0) != 0, f"{label}: runAsUser is 0 or unset"
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, label
    for doc in find(manifests, "RayService") + find(manifests, "RayCluster"):
        cluster = doc["spec"].get("rayClusterConfig", doc["spec"])
        if cluster.get("enableInTreeAutoscaling"):  # the autoscaler sidecar KubeRay adds to the head
            sidecar = cluster.get("autoscalerOptions", {}).get("securityContext", {})
            assert sidecar.get("runAsNonRoot") is True and sidecar.get("runAsUser", 0) != 0, doc["metadata"][
                "name"
            ]


def test_secrets_only_from_secret_refs(manifests: list[dict[str, Any]]) -> None:
    # the one Secret the chart renders holds the bundled Valkey's address, built from the release name
    for secret in find(manifests, "Secret"):
        assert secret["metadata"]["name"] == f"{RELEASE}-counterpoint-redis", "no Secrets from values"
        assert set(secret["stringData"]) == {"url"} and "@" not in secret["stringData"]["url"]
    for label, _pod, container in all_containers(manifests):
        for env in container.get("env", []):
            if env["name"] in SECRET_ENV:
                assert "value" not in env, f"{label}: {env['name']} is a plain value"
                assert "secretKeyRef" in env.get("valueFrom", {}), f"{label}: {env['name']} not from a Secret"
            value = str(env.get("value", ""))
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), f"{label}: credentials in {env['name']}"
        for arg in [*container.get("command", []), *container.get("args", [])]:
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", arg), f"{label}: credentials in an argument"
    for doc in find(manifests, "ConfigMap"):
        leaked = set(doc.get("data", {})) & SECRET_ENV
        assert not leaked, f"ConfigMap {doc['metadata']['name']} holds {leaked}"


def test_secrets_are_wired_in_production(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["production"]
    refs: dict[str, set[tuple[str, str]]] = {}
    for _label, _pod, container in all_containers(manifests):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.setdefault(env["name"], set()).add((ref["name"], ref["key"]))
    prod = yaml.safe_load(PROD_VALUES.read_text())
    qdrant_ref = prod["qdrant"]["apiKey"]["valueFrom"]["secretKeyRef"]
    assert refs["COUNTERPOINT_QDRANT_API_KEY"] == {(qdrant_ref["name"], qdrant_ref["key"])}
    assert refs["COUNTERPOINT_DATABASE_URL"] == {("counterpoint-database", "url")}
    # the gateway's bootstrap admin key and the UI's key: one Secret, never a value
    assert (
        refs["COUNTERPOINT_ADMIN_KEY"] == refs["COUNTERPOINT_API_KEY"] == {("counterpoint-admin-key", "key")}
    )
    assert {"MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(refs)
    assert refs["COUNTERPOINT_REDIS_URL"] == {("counterpoint-redis", "url")}  # shared rate limits


def test_pods_use_the_chart_service_account(manifests: list[dict[str, Any]]) -> None:
    accounts = {doc["metadata"]["name"]: doc for doc in find(manifests, "ServiceAccount")}
    assert accounts
    for doc in find(manifests, "Deployment"):
        spec = doc["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] in accounts
        assert spec["automountServiceAccountToken"] is False


def test_resources_are_set(manifests: list[dict[str, Any]]) -> None:
    for label, _pod, container in all_containers(manifests):
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{label}: no requests"
        assert "memory" in resources.get("limits", {}), f"{label}: no memory limit"


def test_disruption_budgets_select_pods(manifests: list[dict[str, Any]]) -> None:
    labels = list(_pod_template_labels(manifests))
    for pdb in find(manifests, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= pod.items() for pod in labels), (
            f"{pdb['metadata']['name']} selects no pod"
        )


def _pod_template_labels(manifests: list[dict[str, Any]]) -> Iterator[dict[str, str]]:
    for doc in manifests:
        spec = doc.get("spec") or {}
        if doc["kind"] == "Deployment":
            yield spec["template"]["metadata"]["labels"]
        cluster = spec.get("rayClusterConfig") if doc["kind"] == "RayService" else spec
        if doc["kind"] in ("RayService", "RayCluster"):
            yield cluster["headGroupSpec"]["template"]["metadata"]["labels"]
            for group in cluster.get("workerGroupSpecs", []):
                yield group["template"]["metadata"]["labels"]


# --- the Serve application --------------------------------------------------------------------


def _check_keys(where: str, data: dict[str, Any], model: Any) -> list[str]:
    """Keys of ``data`` that ``model`` (a pydantic model of Ray's) does not define.

    Ray's Serve schemas accept unknown keys (forward compatibility), so a misspelt option
    would be ignored silently in the cluster; this makes it an error here.
    """
    fields = set(model.model_fields)
    aliases = {f.alias for f in model.model_fields.values() if f.alias}
    return [f"{where}.{key}" for key in data if key not in fields | aliases]


def test_serve_config_is_valid_for_ray(manifests: list[dict[str, Any]]) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    config = serve_config(manifests)
    ServeDeploySchema.model_validate(config)
    unknown = _check_keys("", config, ServeDeploySchema)
    unknown += _check_keys("http_options", config.get("http_options", {}), HTTPOptionsSchema)
    for app in config["applications"]:
        unknown += _check_keys(app["name"], app, ServeApplicationSchema)
        for dep in app.get("deployments", []):
            where = f"{app['name']}.{dep['name']}"
            unknown += _check_keys(where, dep, DeploymentSchema)
            unknown += _check_keys(
                f"{where}.ray_actor_options", dep.get("ray_actor_options", {}), RayActorOptionsSchema
            )
            unknown += _check_keys(
                f"{where}.autoscaling_config", dep.get("autoscaling_config", {}), AutoscalingConfig
            )
    assert not unknown, f"options Ray does not know: {unknown}"
    (service,) = find(manifests, "RayService")
    http_port = config["http_options"]["port"]
    ray_ports = {
        p["containerPort"]
        for _label, _pod, c in all_containers([service])
        for p in c.get("ports", [])
        if p["name"] == "serve"
    }
    assert ray_ports == {http_port}, "Serve's HTTP port and the pods' `serve` port differ"


def test_serve_application_is_the_counterpoint_graph(manifests: list[dict[str, Any]]) -> None:
    (app,) = serve_config(manifests)["applications"]
    assert app["import_path"] == IMPORT_PATH
    assert app["route_prefix"] == "/"
    assert {d["name"] for d in app["deployments"]} >= {"gateway", "embed", "decode"}
    assert set(app.get("args", {})) <= setting_names(), "app_builder args are Settings fields"


def test_app_builder_is_importable() -> None:
    module_name, attr = IMPORT_PATH.split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))


def _graph_deployments(app: dict[str, Any], settings: dict[str, Any] | None = None) -> set[str]:
    """Names of the deployments ``app_builder`` builds for a rendered Serve application."""
    from ray.serve._private.build_app import build_app as build_deployments

    module = importlib.import_module(IMPORT_PATH.split(":")[0])
    assert app["name"] == module.APP_NAME
    graph = module.app_builder({**(settings or {}), **app.get("args", {})})
    return {deployment.name for deployment in build_deployments(graph, name=app["name"]).deployments}


@pytest.mark.parametrize("render", ["default", "production"])
def test_serve_deployments_are_the_graph(rendered: dict[str, list[dict[str, Any]]], render: str) -> None:
    """serveConfigV2 configures exactly the deployments the application has: none unknown
    (Serve would refuse the config) and none left to code defaults (decode included); the
    application name is the one the launcher uses."""
    (app,) = serve_config(rendered[render])["applications"]
    names = _graph_deployments(app)
    configured = {d["name"] for d in app["deployments"]}
    assert configured == names == {"gateway", "embed", "decode"}, (configured, names)
    (decode,) = (d for d in app["deployments"] if d["name"] == "decode")
    assert decode["ray_actor_options"]["num_cpus"] >= 1, "generation is CPU-bound: give it a core"


@pytest.mark.parametrize("render", ["default", "production"])
def test_request_path_deployments_keep_the_fast_path_and_the_lane_a_core(
    rendered: dict[str, list[dict[str, Any]]], render: str
) -> None:
    """The chart's ray_actor_options replace the code's: the gateway and embed entries must carry
    the same fast-path flags, and the gateway (where the query lane encodes) a whole core."""
    from counterpoint.services.app import FAST_PATH_ENV

    (app,) = serve_config(rendered[render])["applications"]
    options = {d["name"]: d["ray_actor_options"] for d in app["deployments"]}
    for name in ("gateway", "embed"):
        assert options[name]["runtime_env"]["env_vars"] == FAST_PATH_ENV, name
    assert options["gateway"]["num_cpus"] >= 1


@pytest.mark.parametrize("where", ["settings", "serve.application.args"])
def test_decode_disabled_drops_its_deployment(
    helm: Path, helm_env: dict[str, str], chart_dir: Path, where: str
) -> None:
    """With decode_enabled=false the graph has no decode deployment, so the config must not name it."""
    text = run_helm(
        helm, helm_env, "template", RELEASE, str(chart_dir), "--set", f"{where}.decode_enabled=false"
    )
    manifests = [doc for doc in yaml.safe_load_all(text) if doc]
    (app,) = serve_config(manifests)["applications"]
    configured = {d["name"] for d in app["deployments"]}
    (configmap,) = find(manifests, "ConfigMap")
    settings = {k[13:].lower(): v for k, v in configmap["data"].items() if k.startswith("COUNTERPOINT_")}
    assert configured == _graph_deployments(app, settings) == {"gateway", "embed"}


def test_rerank_model_adds_its_deployment(helm: Path, helm_env: dict[str, str], chart_dir: Path) -> None:
    """With settings.rerank_model the graph gains the rerank deployment, and the config names it."""
    text = run_helm(
        helm, helm_env, "template", RELEASE, str(chart_dir),
        "--set", "settings.rerank_model=models:/scifact-reranker@champion",
    )  # fmt: skip
    manifests = [doc for doc in yaml.safe_load_all(text) if doc]
    (app,) = serve_config(manifests)["applications"]
    configured = {d["name"] for d in app["deployments"]}
    (configmap,) = find(manifests, "ConfigMap")
    settings = {k[13:].lower(): v for k, v in configmap["data"].items() if k.startswith("COUNTERPOINT_")}
    assert configmap["data"]["COUNTERPOINT_RERANK_MODEL"] == "models:/scifact-reranker@champion"
    assert configured == _graph_deployments(app, settings) == {"gateway", "embed", "decode", "rerank"}
