"""The deploy kit parses and says what the README promises: each file checked by its own tool."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def test_docker_compose_config_is_valid():
    env = dict(os.environ, HELPDESK_JWT_SECRET="compose-check-secret-0123456789", TURN_SECRET="turn-check-secret-0123456789")
    out = subprocess.run(["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"), "config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert {"redis", "postgres", "node1", "node2", "node3", "nginx", "coturn"} <= set(config["services"])
    assert config["services"]["node2"]["environment"]["HELPDESK_NODE_ID"] == "node2"
    # issue 10 #9: nodes behind nginx count clients by X-Real-IP, not the proxy's address
    assert all(config["services"][n]["environment"]["HELPDESK_TRUST_PROXY"] == "true" for n in ("node1", "node2", "node3"))
    assert config["services"]["node1"]["environment"]["HELPDESK_TURN_SECRET"] == "turn-check-secret-0123456789"


def test_docker_compose_has_no_default_turn_secret():
    """issue 10 #15: without TURN_SECRET the kit refuses to start instead of using a known secret."""
    env = {k: v for k, v in os.environ.items() if k != "TURN_SECRET"}
    env["HELPDESK_JWT_SECRET"] = "compose-check-secret-0123456789"
    out = subprocess.run(["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"), "config"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "TURN_SECRET" in out.stderr
    assert "change-me" not in (DEPLOY / "docker-compose.yml").read_text()


def test_proxies_set_the_client_ip_and_hide_metrics():
    """issue 10 #9, #19: every proxy sets X-Real-IP for every location, and never serves /metrics."""
    for name in ("nginx.conf", "nginx-compose.conf"):
        conf = (DEPLOY / name).read_text()
        assert conf.count("proxy_pass") == conf.count("proxy_set_header X-Real-IP $remote_addr;"), name
        assert "location = /metrics { return 404; }" in conf, name
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert "http-request set-header X-Real-IP %[src]" in haproxy and "if { path /metrics }" in haproxy
    assert "Environment=HELPDESK_TRUST_PROXY=true" in (DEPLOY / "helpdesk@.service").read_text()
    assert "export HELPDESK_TRUST_PROXY=true" in (REPO / "scripts" / "cluster.sh").read_text()
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "helpdesk.yaml").read_text())}
    env = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HELPDESK_TRUST_PROXY", "value": "true"} in env


def test_turnserver_denies_internal_ranges():
    """issue 10 #15: coturn never relays to link-local (cloud metadata), loopback, CGNAT, private or IPv6 local peers."""
    import ipaddress
    denied = []
    for line in (DEPLOY / "turnserver.conf").read_text().splitlines():
        if line.startswith("denied-peer-ip="):
            low, high = line.split("=", 1)[1].split("-")
            denied.append((ipaddress.ip_address(low), ipaddress.ip_address(high)))

    def blocked(address):
        a = ipaddress.ip_address(address)
        return any(low.version == a.version and low <= a <= high for low, high in denied)

    for address in ["169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "127.0.0.1", "127.255.255.255",
                    "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "::1", "::", "fc00::1", "fd12:3456::1",
                    "fe80::1", "febf::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"]:
        assert blocked(address), address
    for address in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"]:
        assert not blocked(address), address


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
    # issue 10 #2: a ceiling, so a full Redis refuses writes instead of being OOM-killed
    assert lines["maxmemory"][0].endswith(("gb", "mb"))


def test_systemd_unit_drains_on_sigterm():
    unit = (DEPLOY / "helpdesk@.service").read_text()
    assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=25" in unit and "serve --port 808%i" in unit
