from pathlib import Path

import pytest

from streamssl.config import ConfigError, load_config, load_config_text

BASE = """
kafka:
  bootstrap_servers: broker:9092
  events_topic: events
  labels_topic: labels
  predictions_topic: predictions
  dead_letter_topic: dead
events:
  features: [a, b, c]
"""


def test_defaults_and_derived_width():
    cfg = load_config_text(BASE, environ={})
    assert cfg.events.n_features == 3 and cfg.kafka.group_id == "streamssl"
    assert cfg.batch.max_events == 256 and cfg.checkpoint.every_events == 50_000
    assert cfg.http.host == "127.0.0.1"  # not exposed beyond the host unless asked


def test_catch_up_is_off_unless_set():
    """Batches never grow past max_events unless catch_up_events says how far (bounded above by
    the labels' pending room, below by max_events: the parametrised errors)."""
    assert load_config_text(BASE, environ={}).batch.largest == 256
    assert load_config_text(BASE + "batch: {catch_up_events: 1024}\n", environ={}).batch.largest == 1024


def test_features_may_carry_a_type():
    typed = BASE.replace("features: [a, b, c]", "features: [a, {name: b, type: categorical, buckets: 4}, "
                                                  "{name: c, type: boolean, nullable: true}]")
    cfg = load_config_text(typed, environ={})
    assert cfg.events.n_features == 3 and cfg.events.feature_names == ["a", "b", "c"]
    assert [(c.kind, c.width) for c in cfg.events.columns()] == [("numeric", 1), ("categorical", 4), ("boolean", 2)]
    with pytest.raises(ConfigError, match="type"):
        load_config_text(BASE.replace("features: [a, b, c]", "features: [{name: a, type: text}]"), environ={})
    with pytest.raises(ConfigError, match="unique"):
        load_config_text(BASE.replace("features: [a, b, c]", "features: [a, {name: a, type: boolean}]"), environ={})


def test_environment_overrides_the_file_with_typed_values():
    cfg = load_config_text(BASE, environ={
        "STREAMSSL_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093", "STREAMSSL_KAFKA_GROUP_ID": "123",
        "STREAMSSL_BATCH_MAX_EVENTS": "64", "STREAMSSL_HTTP_ENABLED": "false",
        "STREAMSSL_KAFKA_LABELS_TOPIC": "", "UNRELATED": "x"})
    assert cfg.kafka.client_options()["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert cfg.kafka.group_id == "123" and cfg.batch.max_events == 64 and cfg.http.enabled is False
    assert cfg.kafka.labels_topic is None


def test_the_objective_from_file_or_env_reaches_the_learner():
    from streamssl.learner import build_learner

    cfg = load_config_text(BASE + "learner: {objective: infonce, objective_params: {bank_size: 256}}\n", environ={})
    assert cfg.learner.objective == "infonce" and cfg.learner.objective_params == {"bank_size": 256}
    cfg = load_config_text(BASE, environ={"STREAMSSL_LEARNER_OBJECTIVE": "dino"})
    lc = cfg.learner
    learner = build_learner(lc.threshold, "cpu", lc.seed, lc.threads, lc.objective, encoder=lc.ssl)
    assert learner.encoder and learner.objective == "dino"
    off = build_learner(objective="dino", encoder=False)  # ssl: false wins over the objective
    assert not off.encoder


def test_parts_settings_reach_the_daemons_learner(tmp_path: Path):
    import logging

    from streamssl.daemon.service import Daemon

    text = BASE + ("learner: {pseudo_labels: true, threshold: 0.95, "
                   "parts: {mlp: {max_steps: 64}, pseudo_labels: {warmup: 50}, linear: {link: softmax}}}\n"
                   f"checkpoint: {{path: {tmp_path / 'd.ckpt'}}}\n")
    learner = Daemon(load_config_text(text, environ={}), log=logging.getLogger("t")).learner
    assert learner.mlp.max_steps == 64 and learner.mlp.hidden == 64  # the rest stays the default
    assert learner.pseudo_labels.threshold == 0.95 and learner.pseudo_labels.warmup == 50  # over the switch's part
    assert learner.linear.link == "softmax"


def test_secrets_come_from_env_or_files_and_never_show(tmp_path: Path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file\n")
    text = BASE.replace("  dead_letter_topic: dead", f"""  dead_letter_topic: dead
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_plain_username: svc
  sasl_plain_password_file: {secret_file}""")
    cfg = load_config_text(text, environ={})
    opts = cfg.kafka.client_options()
    assert opts["sasl_plain_password"] == "from-a-file" and opts["security_protocol"] == "SASL_SSL"
    cfg = load_config_text(text, environ={"STREAMSSL_KAFKA_SASL_PLAIN_PASSWORD": "s3cr3t: {x}"})
    assert cfg.kafka.client_options()["sasl_plain_password"] == "s3cr3t: {x}"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())


@pytest.mark.parametrize("change, message", [
    (("features: [a, b, c]", "features: [a, a]"), "feature names must be unique"),
    (("features: [a, b, c]", "layout: array"), "layout 'array' needs n_features"),
    (("labels_topic: labels", "labels_topic: events"), "must all differ"),
    (("bootstrap_servers: broker:9092", "bootstrap_server: broker:9092"), "kafka.bootstrap_server: unknown setting"),
    (("events:", "batch: {max_events: 0}\nevents:"), "batch.max_events: Input should be greater than or equal to 1"),
    (("  dead_letter_topic: dead\n", ""), "kafka.dead_letter_topic: Field required"),
    (("  dead_letter_topic: dead", "  dead_letter_topic: dead\n  security_protocol: SASL_SSL"), "needs sasl_mechanism"),
    (("events:", "learner: {objective: simclr}\nevents:"), "learner.objective: Input should be 'denoising'"),
    (("events:", "learner: {objective: dino, objective_params: {temprature: 0.1}}\nevents:"),
     "objective_params: dino has no setting temprature"),
    (("events:", "learner: {parts: {mlp: {steps_max: 64}}}\nevents:"),
     "part mlp (MLPHead) has no setting steps_max (its settings: balanced_replay, hidden"),
    (("events:", "learner: {parts: {forest: {n_models: 5}}}\nevents:"), "no part 'forest' (the parts: calibrate,"),
    (("events:", "learner: {memory: false, parts: {memory: {k: 3}}}\nevents:"),
     "part memory is switched off and takes no settings"),
    (("events:", "learner: {parts: {mlp: {max_steps: 0}}}\nevents:"), "part mlp: MLPHead needs"),
    (("events:", "labels: {max_pending: 100}\nbatch: {max_events: 64}\nevents:"),
     "labels.max_pending (100) must be 0 or at least twice batch.max_events (64)"),
    (("events:", "labels: {max_pending: 1000}\nbatch: {max_events: 64, catch_up_events: 600}\nevents:"),
     "labels.max_pending (1000) must be 0 or at least twice batch.catch_up_events (600)"),
    (("events:", "batch: {max_events: 64, catch_up_events: 32}\nevents:"),
     "catch_up_events (32) must be at least max_events (64)"),
    (("events:", "labels: {max_lead_s: 0}\nevents:"), "labels.max_lead_s: Input should be greater than 0"),
])
def test_invalid_configs_say_where_and_why(change, message):
    with pytest.raises(ConfigError) as err:
        load_config_text(BASE.replace(*change), "daemon.yaml", environ={})
    assert message in str(err.value) and str(err.value).startswith("daemon.yaml: invalid configuration")


def test_unreadable_and_non_mapping_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_the_shipped_example_config_is_valid():
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "deployments" / "config" / "streamssl.yaml", environ={})
    assert cfg.events.n_features == 8 and cfg.kafka.dead_letter_topic == "dead-letters"


def test_run_with_a_bad_config_exits_2_with_every_problem(tmp_path: Path, capsys):
    from streamssl.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("features: [a, b, c]", "features: []").replace("group_id", "x") + "batch: {max_events: -1}\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamssl: error: {bad}: invalid configuration")
    assert "batch.max_events" in err and "events: layout 'object' needs the list of feature names" in err
