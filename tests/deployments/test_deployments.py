"""deployments/, checked for real without Docker: every file parses, the files agree with each other
and with what the daemon reads and exports, promtool validates and unit-tests the rules, and a real
Prometheus scrapes a real daemon."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from streamssl.config import DaemonConfig, load_config_text
from streamssl.metrics.daemon import DaemonMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
CONFIG_FILE = DEPLOY / "config" / "streamssl.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus; "
                                                             ".ci/run installs it)")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def config_with(environ: dict[str, str], text: str | None = None) -> DaemonConfig:
    """The shipped config as a deployment runs it: the file, then its STREAMSSL_* environment
    (an unknown STREAMSSL_<SECTION>_<KEY> is an error, so a misspelt variable fails here)."""
    return load_config_text(text if text is not None else CONFIG_FILE.read_text(), "deployment", environ=environ)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(DEPLOY / "compose.yaml")


@pytest.fixture(scope="module")
def statefulset() -> dict:
    return load(DEPLOY / "k8s" / "base" / "statefulset.yaml")


def container(sts: dict) -> dict:
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    return c


def plain_env(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


# -- every file parses ------------------------------------------------------------------------


def test_every_yaml_and_json_file_parses():
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    assert len(files) >= 14
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            docs = list(yaml.safe_load_all(path.read_text()))
            assert docs and all(d is not None for d in docs), path


# -- Dockerfile ---------------------------------------------------------------------------------


def dockerfile() -> dict[str, list[str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def test_dockerfile_matches_the_config_and_runs_as_a_user():
    d, cfg = dockerfile(), config_with({})
    assert d["EXPOSE"] == [str(cfg.http.port)]
    (health,) = d["HEALTHCHECK"]
    assert f"127.0.0.1:{cfg.http.port}/healthz" in health
    (user,) = d["USER"]
    assert user.isdigit() and int(user) != 0
    (volume,) = d["VOLUME"]
    assert json.loads(volume) == [str(PurePosixPath(cfg.checkpoint.path).parent)]
    cmd = json.loads(d["CMD"][0])
    config_path = cmd[cmd.index("--config") + 1]
    assert any(c.split()[-1] == config_path for c in d["COPY"])
    assert json.loads(d["ENTRYPOINT"][0]) == ["streamssl"] and cmd[0] == "run"
    for copy_line in d["COPY"]:
        for source in copy_line.split()[:-1]:
            assert (ROOT / source).exists(), source
    assert any("TORCH_INDEX" in a for a in d["ARG"])


# -- compose ------------------------------------------------------------------------------------


def test_compose_services_files_and_volumes_exist(compose):
    services = compose["services"]
    assert {"kafka", "topics", "produce", "streamssl", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, (name, dep)
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    assert services["kafka"]["image"].startswith("apache/kafka:")  # the official image, KRaft
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["topics"]["image"] == services["kafka"]["image"]
    assert services["produce"]["image"] == services["streamssl"]["image"] == "streamssl:latest"


def test_compose_agrees_with_the_daemon_config(compose):
    services = compose["services"]
    daemon = services["streamssl"]
    cfg = config_with({k: str(v) for k, v in daemon["environment"].items()})
    mounted = {m.split(":")[1]: m.split(":")[0] for m in daemon["volumes"]}
    assert (DEPLOY / mounted["/etc/streamssl/streamssl.yaml"]).resolve() == CONFIG_FILE
    assert str(PurePosixPath(cfg.checkpoint.path).parent) in mounted
    assert daemon["ports"] == [f"{cfg.http.port}:{cfg.http.port}"]
    assert cfg.http.host == "0.0.0.0"
    # The topic job creates exactly the daemon's topics, on the broker the daemon uses.
    script = services["topics"]["command"][0]
    created = re.search(r"for topic in ([^;]+);", script).group(1).split()
    k = cfg.kafka
    assert sorted(created) == sorted([k.events_topic, k.labels_topic, k.predictions_topic, k.dead_letter_topic,
                                      k.handover_topic])
    assert f"--bootstrap-server {k.bootstrap_servers}" in script
    # The producer feeds those topics on that broker.
    args = services["produce"]["command"]
    opt = {a: b for a, b in zip(args, args[1:]) if a.startswith("--")}
    assert args[0] == "produce"
    assert (opt["--topic"], opt["--labels-topic"], opt["--bootstrap-servers"]) == (
        k.events_topic, k.labels_topic, k.bootstrap_servers)
    from streamssl.cli import build_parser

    build_parser().parse_args(args)  # every flag exists
    # Prometheus scrapes the daemon's service and port.
    prom = load(DEPLOY / "prometheus" / "prometheus.yml")
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"streamssl:{cfg.http.port}", f"streamssl-1:{cfg.http.port}"]
    # The second replica: the same config and environment but its rank, its own state, the
    # rendezvous on the first's service name.
    second = services["streamssl-1"]
    cfg1 = config_with({k: str(v) for k, v in second["environment"].items()})
    assert (cfg.distributed.world_size, cfg.distributed.resolved_rank(), cfg1.distributed.resolved_rank()) == (2, 0, 1)
    assert cfg1.distributed.address == cfg.distributed.address == f"streamssl:{cfg.distributed.address.split(':')[1]}"
    assert set(second["volumes"]) & set(daemon["volumes"]) == {daemon["volumes"][0]}  # the config only


def test_compose_gpu_override(compose):
    gpu = load(DEPLOY / "compose.gpu.yaml")["services"]["streamssl"]
    env = {**compose["services"]["streamssl"]["environment"], **gpu["environment"]}
    assert config_with({k: str(v) for k, v in env.items()}).learner.device == "cuda"
    assert gpu["build"]["args"]["TORCH_INDEX"].endswith("/cu128")
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_prometheus_and_grafana_are_wired_to_each_other(compose):
    services = compose["services"]
    prom_mounts = dict(m.split(":")[:2] for m in services["prometheus"]["volumes"])
    prom = load(DEPLOY / "prometheus" / "prometheus.yml")
    config_in_container = PurePosixPath(prom_mounts["./prometheus/prometheus.yml"])
    for pattern in prom["rule_files"]:
        # Relative rule paths resolve against the config file's folder, in the container and here.
        assert str(config_in_container.parent / PurePosixPath(pattern).parent) == prom_mounts["./prometheus/rules"]
        assert list((DEPLOY / "prometheus").glob(pattern))
    graf_mounts = dict(m.split(":")[:2] for m in services["grafana"]["volumes"])
    provider = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "streamssl.yml")["providers"][0]
    assert provider["options"]["path"] == graf_mounts["./grafana/dashboards"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana" / "dashboards" / PurePosixPath(home).name).exists()
    assert PurePosixPath(home).parent == PurePosixPath(provider["options"]["path"])
    datasource = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services
    uids = {t["datasource"]["uid"] for t in dashboard_targets()}
    assert uids == {datasource["uid"]}


# -- Kubernetes ---------------------------------------------------------------------------------


def test_kustomization_lists_existing_files():
    for folder in ("base", "gpu"):
        k = load(DEPLOY / "k8s" / folder / "kustomization.yaml")
        for resource in k["resources"]:
            assert (DEPLOY / "k8s" / folder / resource).exists(), resource


def test_configmap_carries_the_shipped_config_verbatim():
    cm = load(DEPLOY / "k8s" / "base" / "configmap.yaml")
    assert yaml.safe_load(cm["data"]["streamssl.yaml"]) == load(CONFIG_FILE)


def test_statefulset_agrees_with_config_service_monitor_secrets_and_image(statefulset):
    sts, c = statefulset, container(statefulset)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    cm = load(DEPLOY / "k8s" / "base" / "configmap.yaml")
    cfg = config_with(plain_env(c), cm["data"]["streamssl.yaml"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    sync_host, _, sync_port = cfg.distributed.address.rpartition(":")
    assert ports == {"metrics": cfg.http.port, "sync": int(sync_port)}
    # One rank per replica, from the pod's name; the rendezvous on pod 0 through the headless Service.
    assert cfg.distributed.world_size == sts["spec"]["replicas"] and cfg.distributed.rank is None
    assert sync_host == f"{sts['metadata']['name']}-0.{sts['spec']['serviceName']}"
    assert cfg.distributed.resolved_rank({"HOSTNAME": f"{sts['metadata']['name']}-2"}) == 2
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    config_path = PurePosixPath(c["args"][c["args"].index("--config") + 1])
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[str(config_path.parent)]]["configMap"]["name"] == cm["metadata"]["name"]
    assert config_path.name in cm["data"]
    state = mounts[str(PurePosixPath(cfg.checkpoint.path).parent)]
    assert state in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    # Runs as the image's user, never as root.
    security = sts["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] and str(security["runAsUser"]) == dockerfile()["USER"][0]
    # Secrets: every reference names a secret and key that the example documents.
    examples = {s["metadata"]["name"]: s for s in yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text())}
    refs = [e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e]
    assert refs
    for ref in refs:
        assert ref["key"] in examples[ref["name"]]["stringData"]
    secret_env = {e["name"]: "x" for e in c["env"] if "valueFrom" in e}
    config_with({**plain_env(c), **secret_env}, cm["data"]["streamssl.yaml"])  # the names are real settings
    # The Service and the PodMonitor find the pods and their metrics port.
    svc = load(DEPLOY / "k8s" / "base" / "service.yaml")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["metrics", "sync"]
    assert svc["metadata"]["name"] == sts["spec"]["serviceName"] and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"]  # pod 0's name resolves while the replicas start
    pm = load(DEPLOY / "k8s" / "base" / "podmonitor.yaml")
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics"]
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(cfg.http.port) and annotations["prometheus.io/path"] == "/metrics"
    assert c["image"] in {i["name"] for i in load(DEPLOY / "k8s" / "base" / "kustomization.yaml")["images"]}


def apply_json_patch(doc: dict, ops: list[dict]) -> dict:
    """The ``add`` operations of RFC 6902 that the GPU overlay uses."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node.append(op["value"]) if last == "-" else node.insert(int(last), op["value"])
        else:
            node[last] = op["value"]
    return doc


def test_gpu_overlay_patches_the_base_into_a_valid_gpu_pod(statefulset):
    k = load(DEPLOY / "k8s" / "gpu" / "kustomization.yaml")
    (patch,) = k["patches"]
    assert patch["target"] == {"kind": "StatefulSet", "name": statefulset["metadata"]["name"]}
    gpu = apply_json_patch(statefulset, yaml.safe_load(patch["patch"]))
    c = container(gpu)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert config_with(plain_env(c)).learner.device == "cuda"
    assert gpu["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert k["images"] == [{"name": c["image"], "newTag": "cuda"}]


# -- Prometheus rules and the dashboard against what the daemon exports ---------------------------


def dashboard_targets() -> list[dict]:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "streamssl.json").read_text())
    return [t for p in board["panels"] for t in p.get("targets", [])] + board["annotations"]["list"]


def queried_metrics() -> dict[str, set[str]]:
    """``streamssl_*`` names used by each rule and dashboard query (recording rules' own
    ``streamssl:`` names excluded)."""
    used: dict[str, set[str]] = {}
    rules = load(DEPLOY / "prometheus" / "rules" / "streamssl.yml")
    exprs = [(r.get("alert") or r.get("record"), r["expr"]) for g in rules["groups"] for r in g["rules"]]
    exprs += [(f"dashboard: {t.get('name') or t['expr'][:40]}", t["expr"]) for t in dashboard_targets()]
    for where, expr in exprs:
        for name in re.findall(r"\bstreamssl_[a-z0-9_]+", expr):
            used.setdefault(name, set()).add(where)
    return used


def exported_metrics() -> set[str]:
    """Sample names the daemon's registry exports, after a short run of a learner with the encoder
    on (so that every family has been touched)."""
    from streamssl.learner import build_learner

    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)
    learner = build_learner(objective="infonce", pseudo_labels=True, device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(3):
        X = rng.normal(size=(128, 4))
        learner.learn_many(X, [int(v) if i % 4 == 0 else None for i, v in enumerate(X[:, 0] > 0)])
    metrics.sync_learner(learner)
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""], "summary": ["_sum", "_count"]}
    return {family.name + s for family in registry.collect() for s in suffixes[family.type]}


def test_every_metric_in_rules_and_dashboard_is_exported_by_the_daemon():
    used, exported = queried_metrics(), exported_metrics()
    assert len(used) >= 20
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not missing, f"queried but not exported: {missing}"


def test_the_alerts_an_operator_needs_are_there():
    rules = load(DEPLOY / "prometheus" / "rules" / "streamssl.yml")
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {
        "StreamsslDriftDetected", "StreamsslPseudoLabelAcceptanceCollapsed", "StreamsslPseudoLabelAcceptanceExploded",
        "StreamsslConfidenceDropping", "StreamsslEstimatedAccuracyDropping", "StreamsslEncoderCollapse", "StreamsslConsumerLagGrowing",
        "StreamsslNoEventsProcessed", "StreamsslNotReady", "StreamsslDeadLetterRateHigh", "StreamsslCheckpointTooOld"}
    tests = load(DEPLOY / "prometheus" / "tests" / "streamssl.test.yml")
    tested = {c["alertname"] for t in tests["tests"] for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert tested == alerts  # every alert has a case where it fires


def test_the_committed_dashboard_is_what_the_generator_builds():
    pytest.importorskip("grafana_foundation_sdk")
    done = subprocess.run([sys.executable, str(DEPLOY / "grafana" / "dashboard.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "streamssl.json").read_text())
    titles = {p["title"] for p in board["panels"]}
    assert {"Throughput", "Consumer lag", "Latency", "Prequential accuracy", "Confidence", "Pseudo-labels", "Drift",
            "SSL loss", "Effective rank", "Dead letters", "Calibration error"} <= titles
    accuracy = next(p for p in board["panels"] if p["title"] == "Prequential accuracy")
    assert {t["expr"] for t in accuracy["targets"]} == {  # realised against estimated, on one panel
        "streamssl_prequential_accuracy_ratio", "streamssl_estimated_accuracy_ratio"}
    assert any(p["type"] == "heatmap" for p in board["panels"])
    assert board["annotations"]["list"][0]["name"] == "Drift"


@needs_promtool
def test_promtool_checks_the_config_and_rules_and_runs_their_unit_tests():
    prom = DEPLOY / "prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "rules/streamssl.yml"],
                 ["test", "rules", "tests/streamssl.test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=prom, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"promtool {shlex.join(args)}:\n{done.stdout}\n{done.stderr}"
        assert "SUCCESS" in done.stdout + done.stderr


# -- a real Prometheus scraping a real daemon ------------------------------------------------------


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package prometheus; "
                                                               ".ci/run installs it)")
def test_prometheus_scrapes_a_running_daemon_and_loads_the_rules(kafka_broker, tmp_path):
    from streamssl.replay.produce import produce
    from streamssl.replay.run import bundled_sample
    from kafka import KafkaProducer

    from streamssl.testing.broker import Topics, free_port
    from streamssl.testing.daemon import DaemonProcess, wait_for, write_config

    topics = Topics.unique("prom").create(kafka_broker.bootstrap, partitions=1)
    config, port = write_config(tmp_path, kafka_broker.bootstrap, topics, "prom")
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log", "--timeout", "60")
    prom_port = free_port()
    (tmp_path / "rules").mkdir()
    shutil.copy(DEPLOY / "prometheus" / "rules" / "streamssl.yml", tmp_path / "rules" / "streamssl.yml")
    prom_config = load(DEPLOY / "prometheus" / "prometheus.yml")
    prom_config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    prom_config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    prometheus = subprocess.Popen(
        [shutil.which("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))

    def api(path: str, **params) -> dict:
        url = f"http://127.0.0.1:{prom_port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def learned() -> bool:
        try:
            result = api("query", query='sum(streamssl_events_processed_total{job="streamssl",kind="unlabelled"})')
        except OSError:
            return False
        return bool(result["data"]["result"]) and float(result["data"]["result"][0]["value"][1]) >= 500

    try:
        wait_for(lambda: daemon.get("/readyz")[0] == 200, 120, "/readyz", daemon)
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        try:
            produce(bundled_sample(), producer, topics.events, topics.labels, 0.05, 0.0, limit=1000)
        finally:
            producer.close()
        wait_for(learned, 120, "Prometheus to read streamssl_events_processed_total back", daemon)
        up = api("query", query='up{job="streamssl"}')["data"]["result"]
        assert [r["value"][1] for r in up] == ["1"]
        groups = api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 14 and all(r["health"] == "ok" for r in rules), rules
    finally:
        prometheus.terminate()
        prometheus.wait(20)
        daemon.kill()


def test_the_compose_daemons_may_lift_their_checkpoint_writer_out_of_sched_idle(compose):
    """The image runs as an unprivileged user: without RLIMIT_NICE reaching niceness 19 the
    daemon could not lift an idle-scheduled writer it waits for (checkpointer.can_idle)."""
    from streamssl.daemon.checkpointer import CHILD_NICENESS

    for name in ("streamssl", "streamssl-1"):
        nice = compose["services"][name]["ulimits"]["nice"]
        soft = nice["soft"] if isinstance(nice, dict) else nice
        assert soft >= 20 - CHILD_NICENESS, name
