"""Checkpoint files: versioned, checksummed, written atomically, the previous one kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from pathlib import Path

import torch

from ..errors import StreamSSLError
from . import serialize

MAGIC = b"STREAMSSL-CKPT\n"
FORMAT_VERSION = 1


class CheckpointError(StreamSSLError):
    """A checkpoint file cannot be used: missing, corrupted, tampered with, or of another format."""


def encode(state: object, key: bytes | None = None) -> bytes:
    """The bytes of a checkpoint: magic, a JSON header (format, checksum, optional HMAC), the payload."""
    return b"".join(encode_parts(state, key))


def encode_parts(state: object, key: bytes | None = None) -> tuple[bytes, bytes]:
    """:func:`encode`'s bytes in two parts, the header and the payload, for a writer that need
    not join them (a copy of the whole state)."""
    payload = serialize.dumps(state)
    header = {"format": FORMAT_VERSION, "sha256": hashlib.sha256(payload).hexdigest()}
    if key is not None:
        header["hmac_sha256"] = hmac.new(key, payload, hashlib.sha256).hexdigest()
    head = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(head)) + head, payload


def decode(data: bytes, key: bytes | None = None, device: torch.device | None = None, source: str = "checkpoint") -> object:
    """The state in checkpoint bytes, after checking format, checksum and (if ``key``) signature."""
    payload, header = _checked(data, source)
    if key is not None:
        expected = hmac.new(key, payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(header.get("hmac_sha256", ""))):
            raise CheckpointError(f"{source}: signature mismatch (unsigned or tampered file)")
    try:
        return serialize.loads(payload, device)
    except serialize.UnsafeStateError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def _checked(data: bytes, source: str) -> tuple[memoryview, dict]:
    """The payload (a view, not a copy) and header of checkpoint bytes whose format and checksum hold."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CheckpointError(f"{source}: not a streamssl checkpoint")
    (n,) = struct.unpack(">I", data[len(MAGIC): len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start: start + n])
    except ValueError as exc:
        raise CheckpointError(f"{source}: unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: unreadable header (not a JSON object)")
    if header.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{source}: format {header.get('format')!r}, this version reads {FORMAT_VERSION}")
    payload = memoryview(data)[start + n:]
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{source}: checksum mismatch (truncated or corrupted file)")
    return payload, header


def intact(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is a whole checkpoint (format and checksum hold; the
    signature, which needs the key, is checked on loading)."""
    try:
        _checked(Path(path).read_bytes(), str(path))
    except (OSError, CheckpointError):
        return False
    return True


def write_atomic(path: str | os.PathLike, data: bytes | tuple[bytes, ...], intact_before: bool | None = None) -> None:
    """Write ``data`` (or its parts, one after the other) to ``path`` so that a crash leaves
    either the old or the new file whole.

    The previous file becomes ``path.prev`` only if it is :func:`intact`: a damaged one (from
    which a restore fell back to ``.prev``) is moved to ``path.damaged`` for inspection instead,
    so the last good backup survives a second fault. ``intact_before``: whether the caller
    knows the file at ``path`` whole (it wrote or read it back itself), which spares reading it
    again; ``None``: read it and check."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for part in (data,) if isinstance(data, bytes) else data:
            f.write(part)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():  # a hard link, then the rename over it: the path never goes missing
        whole = intact(path) if intact_before is None else intact_before
        keep = path.with_name(path.name + (".prev" if whole else ".damaged"))
        link = path.with_name(path.name + ".link")
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, keep)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_learner(learner, path: str | os.PathLike, key: bytes | None = None) -> None:
    """Checkpoint a :class:`~streamssl.learner.StreamLearner` to ``path``.

    >>> import tempfile, numpy as np
    >>> from streamssl.learner import StreamLearner
    >>> model = StreamLearner(seed=0)
    >>> model.learn_many(np.eye(3), [0, 1, None])
    >>> path = tempfile.mkdtemp() + "/model.ckpt"
    >>> save_learner(model, path)
    >>> restored = load_learner(path)
    >>> bool((restored.predict_proba_many(np.eye(3)) == model.predict_proba_many(np.eye(3))).all())
    True
    """
    write_atomic(path, encode({"kind": type(learner).__name__, "state": learner.state_dict()}, key))


def load_learner(path: str | os.PathLike, key: bytes | None = None, device: str | None = None):
    """Restore a learner saved by :func:`save_learner`, on ``device`` (``None``: the device it
    was built for; ``"auto"``: CUDA when present)."""
    from ..device import resolve_device
    from ..learner import StreamLearner

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc.strerror or exc}") from None
    # Tensors come back on the CPU; each part copies them to its own device (module
    # parameters, buffers), while generator states must stay on the CPU.
    blob = decode(data, key, None, source=str(path))
    if not isinstance(blob, dict) or blob.get("kind") != StreamLearner.__name__:
        raise CheckpointError(f"{path}: not a StreamLearner checkpoint")
    state = blob["state"]
    if device is not None:
        state["params"] = {**state["params"], "device": str(resolve_device(device))}
    return StreamLearner.from_state_dict(state)
