"""The configuration of ``streamssl run``: one frozen, validated object, read from YAML and the environment.

Every setting has a default except where the stream must be described (topics, features).
Environment variables override the file for deployment: ``STREAMSSL_<SECTION>_<KEY>`` sets
``<section>.<key>`` (for example ``STREAMSSL_KAFKA_BOOTSTRAP_SERVERS``,
``STREAMSSL_KAFKA_GROUP_ID``, ``STREAMSSL_KAFKA_SASL_PLAIN_PASSWORD``). Secrets (the SASL
password, the SSL key password, the checkpoint HMAC key) come from the environment or from a
file named in the config (``*_file``), and are never printed: they are ``SecretStr``.

Examples
--------
>>> cfg = DaemonConfig.model_validate({
...     "kafka": {"events_topic": "events", "predictions_topic": "predictions", "dead_letter_topic": "dlq"},
...     "events": {"features": ["x1", "x2"]},
... })
>>> cfg.kafka.bootstrap_servers, cfg.batch.max_events, cfg.events.n_features
('localhost:9092', 256, 2)
>>> load_config_text("kafka: {events_topic: e, predictions_topic: p, dead_letter_topic: d}\\nevents: {layout: array}")
Traceback (most recent call last):
...
streamssl.config.ConfigError: <config>: invalid configuration
  events: layout 'array' needs n_features
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model, model_validator

from .errors import InputError
from .learner.switches import SWITCHES
from .schema import Column
from .ssl import DEFAULT_OBJECTIVE, OBJECTIVE_NAMES

ENV_PREFIX = "STREAMSSL_"


class ConfigError(InputError):
    """The configuration cannot be used; the message lists every problem with its location."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Section):
    """Where events come from and where predictions and rejects go."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "streamssl"
    events_topic: str
    labels_topic: str | None = None
    predictions_topic: str
    dead_letter_topic: str
    # Where each daemon of the group writes, per partition, the window of records the next owner
    # of that partition reads again to rebuild its waiting label-join state (see
    # streamssl.sources.handover). Without it, labels for the events read by a partition's
    # previous owner shortly before a rebalance are lost (counted as unknown misses).
    handover_topic: str | None = None
    client_id: str = "streamssl"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(2_000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=1000)
    request_timeout_ms: int = Field(30_000, ge=1000)
    fetch_max_wait_ms: int = Field(100, ge=0)  # the broker's wait for data: bounds latency when idle
    # Security, passed through to kafka-python.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    sasl_plain_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_password_file: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _check(self) -> "KafkaConfig":
        topics = [t for t in (self.events_topic, self.labels_topic, self.predictions_topic, self.dead_letter_topic,
                              self.handover_topic) if t]
        if len(set(topics)) != len(topics):
            raise ValueError("events, labels, predictions, dead-letter and handover topics must all differ")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        return self

    def client_options(self) -> dict[str, Any]:
        """Connection and security settings for any kafka-python client (secrets resolved)."""
        opts: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers.split(","),
                                "client_id": self.client_id, "security_protocol": self.security_protocol,
                                "request_timeout_ms": self.request_timeout_ms}
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_plain_username
            opts["sasl_plain_password"] = _secret(self.sasl_plain_password, self.sasl_plain_password_file)
        if self.security_protocol.endswith("SSL"):
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key) is not None:
                    opts[key] = str(getattr(self, key))
            opts["ssl_check_hostname"] = self.ssl_check_hostname
            password = _secret(self.ssl_password, self.ssl_password_file)
            if password is not None:
                opts["ssl_password"] = password
        return opts


class BatchConfig(_Section):
    """A micro-batch closes at ``max_events`` events or after ``max_wait_ms``, whichever first.

    With ``catch_up_events`` set (off by default), a daemon behind its input (once a batch is
    read, a whole batch more waits in the partitions it reads) lets the next batch take twice
    as many, up to ``catch_up_events``, and halves it again as the backlog drains
    (:func:`streamssl.daemon.service.next_batch_cap`). A batch costs the learner less per event
    the larger it is (``Daemon.process`` alone: 40 % more events/s at 1,024 than at 256), but
    through a broker on the same two cores no gain showed, live at 5,000 events/s the tail was
    as often worse as better, and larger batches learn worse (README, "Catching up"): so it is
    for a daemon with a machine of its own that must drain backlogs.

    >>> BatchConfig().largest, BatchConfig(catch_up_events=1024).largest
    (256, 1024)
    """

    max_events: int = Field(256, ge=1, le=100_000)
    max_wait_ms: int = Field(200, ge=1)
    catch_up_events: int | None = Field(None, ge=1, le=400_000)

    @model_validator(mode="after")
    def _check_catch_up(self) -> "BatchConfig":
        if self.catch_up_events is not None and self.catch_up_events < self.max_events:
            raise ValueError(f"catch_up_events ({self.catch_up_events}) must be at least max_events "
                             f"({self.max_events})")
        return self

    @property
    def largest(self) -> int:
        """The most events one batch takes, catching up included."""
        return self.max_events if self.catch_up_events is None else self.catch_up_events


class FeatureSpec(_Section):
    """One feature of ``events.features`` given with its type (a plain name is numeric):
    ``{name: country, type: categorical}``. ``nullable`` gives a numeric or boolean feature a
    missingness indicator; ``buckets`` is a categorical feature's number of hash slots."""

    name: str
    type: Literal["numeric", "categorical", "boolean"] = "numeric"
    nullable: bool = False
    buckets: int = Field(32, ge=1, le=4096)

    def column(self) -> Column:
        return Column(self.name, self.type, self.nullable, self.buckets)



class EventsConfig(_Section):
    """How an event message (a JSON object) maps to a feature vector.

    ``layout: object`` reads ``features`` as an object ``{name: value}`` with the names listed
    in ``features`` (order as listed); ``layout: array`` reads a list of ``n_features`` values.
    ``features_field: null`` with ``layout: object`` reads the features from the top level of
    the message (every key but id, key, timestamp and label). A feature is a name (numeric) or
    a :class:`FeatureSpec` with its type: numeric, categorical (strings, hashed) or boolean.
    A missing value (``null``, NaN, an absent key) is imputed (see :mod:`streamssl.schema`).
    """

    layout: Literal["object", "array"] = "object"
    features: list[str | FeatureSpec] | None = None
    n_features: int | None = Field(None, ge=1)
    features_field: str | None = "features"
    id_field: str | None = "id"
    key_field: str | None = None  # the entity an event belongs to: it has its own temporal context
    timestamp_field: str | None = "timestamp"
    label_field: str | None = "label"
    extra_features: Literal["reject", "ignore"] = "reject"
    max_message_bytes: int = Field(1 << 20, ge=16)

    @model_validator(mode="before")
    @classmethod
    def _derive_width(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("features") and data.get("n_features") is None:
            data = {**data, "n_features": len(data["features"])}
        return data

    @property
    def feature_names(self) -> list[str] | None:
        """The names listed in ``features`` (``None`` when none are)."""
        if self.features is None:
            return None
        return [f if isinstance(f, str) else f.name for f in self.features]

    def columns(self) -> list[Column]:
        """The schema: one column per feature (``[0]``, ``[1]``, ... for an unnamed array)."""
        if self.features:
            return [Column(f) if isinstance(f, str) else f.column() for f in self.features]
        return [Column(f"[{i}]") for i in range(self.n_features or 0)]

    @model_validator(mode="after")
    def _check(self) -> "EventsConfig":
        names = self.feature_names
        if self.layout == "object":
            if not names:
                raise ValueError("layout 'object' needs the list of feature names (features)")
            if len(set(names)) != len(names):
                raise ValueError("feature names must be unique")
            if self.n_features != len(names):
                raise ValueError(f"n_features {self.n_features} but {len(names)} feature names")
        elif self.n_features is None:
            raise ValueError("layout 'array' needs n_features")
        elif self.features_field is None:
            raise ValueError("layout 'array' needs a features_field")
        return self


class LabelsConfig(_Section):
    """Joining delayed ``{id, label}`` records to the events they belong to.

    Events wait for their label ``ttl_s`` (at most ``max_events`` of them). A label read
    before its event waits (at most ``max_pending``) until the events read reach
    ``pending_ttl_s`` past the label's own record time. The daemon holds the labels topic back
    while the pending buffer is over half full, and the events topic while the labels have a
    backlog and the events are read more than ``max_lead_s`` of record time ahead of them
    (``None``, the default: never; the 2M-event soak with it at 30 s joins every label but never
    needed to hold the events); see
    :mod:`streamssl.daemon.pacing`.
    """

    id_field: str = "id"
    label_field: str = "label"
    ttl_s: float = Field(3600.0, gt=0)
    max_events: int = Field(200_000, ge=1)
    pending_ttl_s: float = Field(60.0, ge=0)
    max_pending: int = Field(50_000, ge=0)
    max_lead_s: float | None = Field(None, gt=0)


class CheckpointConfig(_Section):
    """Atomic checkpoints of the learner, the label buffer and the consumer offsets.

    ``writer``: ``process`` (the default) writes each in a forked child, which holds the state as
    it was at the fork while the loop goes on, and serialises it without sharing the loop's
    interpreter lock; ``thread`` copies the state and writes it from a thread of the daemon.
    ``process`` falls back to ``thread`` off Linux and for a learner not on the CPU.
    ``every_events`` counts the records read, labels included (what a crash would replay)."""

    path: Path = Path("streamssl-state/daemon.ckpt")
    every_events: int = Field(50_000, ge=1)
    every_s: float = Field(60.0, gt=0)
    writer: Literal["process", "thread"] = "process"
    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None

    def key(self) -> bytes | None:
        value = _secret(self.hmac_key, self.hmac_key_file)
        return None if value is None else value.encode()


class HttpConfig(_Section):
    """The metrics and health server. Port 0 picks a free port (logged at start). Each
    connection has ``timeout_s`` per read or write; beyond ``max_connections`` at once,
    connections are closed unanswered."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    stall_timeout_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    max_connections: int = Field(32, ge=1)


class DistributedConfig(_Section):
    """Replicas of one consumer group keeping one model (:mod:`streamssl.distributed`).

    ``world_size`` 1 (the default) is a single daemon. ``rank`` is this replica's number,
    below ``world_size``; unset, it is taken from a StatefulSet pod's name (``HOSTNAME``
    ending in ``-<ordinal>``). Rank 0 hosts the rendezvous (a torch.distributed TCPStore) at
    ``address`` (``host:port``, reachable from every replica). Every ``sync_every_s`` the
    replicas present hold a sync round; a round not done within ``timeout_s`` is skipped.
    Labelled rows are offered in every round until every rank has them, for at most
    ``offer_for_s`` (then given up for the ranks still missing: one down that long)."""

    world_size: int = Field(1, ge=1)
    rank: int | None = Field(None, ge=0)
    address: str = "127.0.0.1:29400"
    sync_every_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    offer_for_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "DistributedConfig":
        if self.rank is not None and self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} is not below world_size {self.world_size}")
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address {self.address!r} is not host:port")
        return self

    def resolved_rank(self, environ: Mapping[str, str] | None = None) -> int:
        """``rank``, else the ordinal ending the pod's ``HOSTNAME`` (``streamssl-2`` → 2).

        >>> DistributedConfig(world_size=3).resolved_rank({"HOSTNAME": "streamssl-2"})
        2
        """
        if self.rank is not None:
            return self.rank
        name = (os.environ if environ is None else environ).get("HOSTNAME", "")
        ordinal = name.rpartition("-")[2]
        if self.world_size == 1:
            return 0
        if not ordinal.isdigit() or int(ordinal) >= self.world_size:
            raise ConfigError(f"distributed.rank is not set and HOSTNAME {name!r} does not end in an "
                              f"ordinal below world_size {self.world_size}")
        return int(ordinal)


class _LearnerSettings(_Section):
    """The learner's settings beside its switches (which :data:`LearnerConfig` adds)."""

    objective: Literal[OBJECTIVE_NAMES] | None = None  # naming one turns the encoder on unless ssl: false
    objective_params: dict[str, bool | int | float | list[float]] = {}  # its settings, e.g. {temperature: 0.1}
    threshold: float = Field(0.99, gt=0, le=1)
    device: str = "cpu"  # "auto": CUDA when present (slower for the default learner: README)
    threads: int = Field(1, ge=1)
    seed: int = 0
    # Settings of the learner's parts by name, over what the switches make: e.g.
    # {mlp: {max_steps: 64}} (streamssl.learner.PARTS; a part given settings is on).
    parts: dict[str, dict[str, bool | int | float | str | list[float] | list[str] | None]] = {}

    @model_validator(mode="after")
    def _check_parts(self) -> "_LearnerSettings":
        if not self.parts:
            return self
        from .learner.stream_learner import check_parts  # torch: only for a config that sets parts
        from .learner.switches import switch_settings

        check_parts(self.parts, switch_settings(dict(self), "key"))
        return self

    @model_validator(mode="after")
    def _check_drift_channels(self) -> "_LearnerSettings":
        from .learner.switches import drift_channel

        for text in self.drift_channels or []:
            drift_channel(text)  # a ValueError says what is wrong
        return self

    @model_validator(mode="after")
    def _check_objective_params(self) -> "_LearnerSettings":
        if self.objective_params:
            import inspect

            from .ssl.objectives import OBJECTIVES

            name = self.objective or DEFAULT_OBJECTIVE
            known = set(inspect.signature(OBJECTIVES[name].__init__).parameters) - {"self", "encoder", "view"}
            unknown = sorted(set(self.objective_params) - known)
            if unknown:
                raise ValueError(f"objective_params: {name} has no setting {', '.join(unknown)} "
                                 f"(its settings: {', '.join(sorted(known))})")
        return self


LearnerConfig = create_model(
    "LearnerConfig", __base__=_LearnerSettings, __module__=__name__,
    __doc__="""The learner: its switches, one field per :data:`streamssl.learner.switches.SWITCHES` (the keys
    ``ssl``, ``pseudo_labels``, ``temporal``, ``memory``, ``trees``, ``linear``, ``calibrate``, ``drift_channels``, ``drift_response``,
    ``combiner``; ``null`` keeps the learner's default; the flags of ``streamssl replay`` come from the
    same declaration), and its settings.""",
    **{s.key: (s.config_type, None) for s in SWITCHES},
)


class DaemonConfig(_Section):
    """Everything ``streamssl run`` needs; see the section classes for each part."""

    kafka: KafkaConfig
    events: EventsConfig
    batch: BatchConfig = BatchConfig()
    labels: LabelsConfig = LabelsConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    http: HttpConfig = HttpConfig()
    learner: LearnerConfig = LearnerConfig()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _check_pending_room(self) -> "DaemonConfig":
        # The labels are held back once half the pending buffer is full (see daemon.pacing):
        # the other half must take one more batch of them without dropping any.
        largest = self.batch.largest
        if self.kafka.labels_topic and 0 < self.labels.max_pending < 2 * largest:
            name = "max_events" if self.batch.catch_up_events is None else "catch_up_events"
            raise ValueError(f"labels.max_pending ({self.labels.max_pending}) must be 0 or at least twice "
                             f"batch.{name} ({largest})")
        return self


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read secret ({exc.strerror or exc})") from None
    return None


def apply_env(data: dict, environ: Mapping[str, str]) -> dict:
    """``data`` with ``STREAMSSL_<SECTION>_<KEY>`` variables applied.

    >>> apply_env({"kafka": {"group_id": "a"}}, {"STREAMSSL_KAFKA_GROUP_ID": "b", "HOME": "/"})
    {'kafka': {'group_id': 'b'}}
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    sections = DaemonConfig.model_fields
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("_")
        if section not in sections or not key:
            continue
        # Strings as given (pydantic converts "8", "true", "0.5" for typed fields); an empty
        # value unsets an optional setting; feature names are a YAML list.
        value: Any = raw if raw.strip() else None
        if key == "features" and value is not None:
            value = yaml.safe_load(raw)
        current = out.get(section)
        out[section] = {**(current if isinstance(current, dict) else {}), key: value}
    return out


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_config_text(text: str, source: str = "<config>", environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """A :class:`DaemonConfig` from YAML text and the environment (``os.environ`` by default)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    data = apply_env(data, os.environ if environ is None else environ)
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid configuration\n{_format(exc)}") from None


def load_config(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Read and validate the YAML config at ``path``; relative paths in it are kept as written."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    return load_config_text(text, str(path), environ)
