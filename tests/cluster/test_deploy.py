"""The deploy kit parses and says what the README promises: each file checked by its own tool."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def test_docker_compose_config_is_valid():
    env = dict(os.environ, HELPDESK_JWT_SECRET="compose-check-secret-0123456789")
    out = subprocess.run(["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"), "config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert {"redis", "postgres", "node1", "node2", "node3", "nginx", "coturn"} <= set(config["services"])
    assert config["services"]["node2"]["environment"]["HELPDESK_NODE_ID"] == "node2"


def test_nginx_config_is_valid(tmp_path):
    conf = (DEPLOY / "nginx.conf").read_text().replace("pid /run/helpdesk-nginx.pid;", f"pid {tmp_path}/nginx.pid;") \
        .replace("/var/log/nginx/helpdesk-error.log", f"{tmp_path}/error.log")
    assert "least_conn" in conf and "proxy_set_header Upgrade $http_upgrade" in conf and "max_fails" in conf
    (tmp_path / "nginx.conf").write_text(conf)
    out = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-e", f"{tmp_path}/error.log"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_haproxy_config_is_valid():
    out = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_kubernetes_manifests():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "helpdesk.yaml").read_text())}
    assert set(docs) == {"Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Service", "Ingress"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "preStop" in container["lifecycle"]
    assert pod["terminationGracePeriodSeconds"] > 20, "longer than the node's drain bound"
    assert int(docs["Ingress"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_redis_conf_persists_and_never_evicts():
    lines = {l.split()[0]: l.split()[1:] for l in (DEPLOY / "redis.conf").read_text().splitlines() if l and not l.startswith("#")}
    assert lines["appendonly"] == ["yes"] and lines["appendfsync"] == ["everysec"] and lines["maxmemory-policy"] == ["noeviction"]


def test_systemd_unit_drains_on_sigterm():
    unit = (DEPLOY / "helpdesk@.service").read_text()
    assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=25" in unit and "serve --port 808%i" in unit
