"""deploy/: the example settings name every setting there is (so they cannot drift from the
code) and load; the environment file loads; Compose, Kubernetes and systemd files parse and
agree with the image (its port, its user, its probes) and with the service's command."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from enrichwatch.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE_TOML = DEPLOY / "enrichwatch.example.toml"
COMMENTED_SETTING = re.compile(r"^# ?([a-z_]+ = .*)$", re.MULTILINE)


def setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every leaf setting as its path of TOML keys (aliases where a field has one)."""
    paths: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        path = (*prefix, field.alias or name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= setting_paths(annotation, path)
        else:
            paths.add(path)
    return paths


def toml_paths(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            paths |= toml_paths(value, (*prefix, key))
        else:
            paths.add((*prefix, key))
    return paths


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ENRICHWATCH_* variable from the surroundings may mask what a file says."""
    for name in list(os.environ):
        if name.startswith("ENRICHWATCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_example_toml_as_shipped_loads_and_states_the_defaults(clean_env):
    assert load_settings(EXAMPLE_TOML).model_dump() == load_settings().model_dump()


def test_the_example_toml_names_every_setting_with_a_valid_example(clean_env, tmp_path):
    """Uncommenting every `# key = value` line gives a file that sets every setting, each
    exactly once, and still loads."""
    text = EXAMPLE_TOML.read_text()
    everything = tmp_path / "everything.toml"
    everything.write_text(COMMENTED_SETTING.sub(r"\1", text))

    parsed = tomllib.loads(everything.read_text())
    expected = setting_paths(Settings)
    assert expected - toml_paths(parsed) == set(), "settings missing from the example"
    assert toml_paths(parsed) - expected == set(), "example keys that are no setting"

    settings = load_settings(everything)
    assert settings.crustdata.api_key is not None
    assert settings.crustdata.min_poll_interval is not None


def env_example_settings() -> dict[str, str]:
    """deploy/env.example with its commented `# ENRICHWATCH_X=value` lines taken too."""
    values: dict[str, str] = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        match = re.match(r"^(?:# ?)?(ENRICHWATCH_[A-Z_]+)=(.*)$", line)
        if match:
            values[match[1]] = match[2]
    return values


def test_env_example_sets_nothing_to_empty_and_loads(clean_env):
    values = env_example_settings()
    assert values, "env.example names no setting"
    assert [name for name, value in values.items() if not value] == [], (
        "an empty NAME= sets the empty string (an empty API token would be accepted)"
    )
    known = {"ENRICHWATCH_" + "__".join(path).upper() for path in setting_paths(Settings)}
    assert set(values) - known == set(), "env.example names settings that do not exist"
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert str(settings.db) == "/data/enrichwatch.db"


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def image_port() -> int:
    match = re.search(r"^EXPOSE (\d+)$", dockerfile(), re.MULTILINE)
    assert match, "the Dockerfile exposes a port"
    return int(match[1])


def image_uid() -> int:
    match = re.search(r"--uid (\d+)", dockerfile())
    assert match, "the Dockerfile creates its user with a fixed uid"
    return int(match[1])


def test_compose_runs_the_image_with_a_named_volume_and_a_readiness_healthcheck():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["enrichwatch"]
    port = image_port()

    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert service["command"] == ["enrichwatch", "serve"]
    assert f"{port}:{port}" in service["ports"]
    assert service["environment"]["ENRICHWATCH_PORT"] == str(port)

    volume, mount = service["volumes"][0].split(":")
    assert volume in compose["volumes"], "a named volume, not a host path"
    assert service["environment"]["ENRICHWATCH_DB"].startswith(mount + "/")

    env_files = [entry["path"] for entry in service["env_file"]]
    assert "env.example" in env_files
    assert (DEPLOY / "env.example").is_file()

    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in probe


def k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            objects[document["kind"]] = document
    return objects


def test_k8s_manifests_run_one_non_root_replica_with_probes_volume_and_secret():
    objects = k8s_objects()
    deployment = objects["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    port = image_port()

    assert deployment["replicas"] == 1
    assert deployment["strategy"]["type"] == "Recreate", "SQLite has one writer"
    assert deployment["selector"]["matchLabels"].items() <= (
        deployment["template"]["metadata"]["labels"].items()
    )

    (http_port,) = container["ports"]
    assert http_port["containerPort"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": http_port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": http_port["name"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ENRICHWATCH_PORT"] == str(port)
    assert container["args"] == ["enrichwatch", "serve"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid()
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    claim = objects["PersistentVolumeClaim"]["metadata"]["name"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    (data,) = [name for name, v in volumes.items() if "persistentVolumeClaim" in v]
    assert volumes[data]["persistentVolumeClaim"]["claimName"] == claim
    assert env["ENRICHWATCH_DB"].startswith(mounts[data] + "/")

    sources = {
        next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]
    }
    assert sources["secretRef"] == objects["Secret"]["metadata"]["name"]
    assert sources["configMapRef"] == objects["ConfigMap"]["metadata"]["name"]

    service = objects["Service"]["spec"]
    assert service["selector"].items() <= deployment["template"]["metadata"]["labels"].items()
    assert service["ports"][0]["targetPort"] == http_port["name"]

    listed = set(objects["Kustomization"]["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


def systemd_unit() -> dict[str, list[tuple[str, str]]]:
    """Sections of the unit as (key, value) lists; systemd allows a key more than once."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in (DEPLOY / "enrichwatch.service").read_text().splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key, value))
    return sections


def test_systemd_unit_runs_enrichwatch_serve_hardened_with_its_state_directory():
    unit = systemd_unit()
    service = dict(unit["Service"])

    assert re.search(r"(^|/)enrichwatch serve( |$)", service["ExecStart"])
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].startswith("/")
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
    state = service["StateDirectory"]
    db = re.search(r"--db (\S+)", service["ExecStart"])
    assert db is not None, "ExecStart names the database with --db"
    assert db[1].startswith(f"/var/lib/{state}/"), "the database is in the state directory"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"
