"""wasmflo guest SDK for Python: small helpers over the bindings componentize-py
generates from wit/participant.wit.

A participant module defines ``class WitWorld`` with ``definition``, ``start``,
``process`` and ``on_timer``; refuse a message by raising one of
:func:`invalid_input`, :func:`unavailable` or :func:`internal`. Keep state in module
globals or on the class: each process's instance has its own interpreter.
"""

import json as _json

from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Definition, LogLevel, Message, Nack, NackKind, Port

__all__ = [
    "Definition", "Message", "Port", "definition", "port", "invalid_input",
    "unavailable", "internal", "is_json", "json_of", "send", "send_json", "log",
]


def port(id, type="any", description="", parameter=False, schema=None):
    """One inport or outport."""
    return Port(id, type, description, schema, parameter)


def definition(component, label="", icon="cog", inports=(), outports=()):
    """What ``WitWorld.definition`` returns."""
    return Definition(component, label, icon, list(inports), list(outports))


def invalid_input(reason):
    """``raise invalid_input("...")``: the message is malformed; retrying will not help."""
    return Err(Nack(NackKind.INVALID_INPUT, reason))


def unavailable(reason):
    """``raise unavailable("...")``: a transient condition."""
    return Err(Nack(NackKind.UNAVAILABLE, reason))


def internal(reason):
    """``raise internal("...")``: the participant itself failed."""
    return Err(Nack(NackKind.INTERNAL, reason))


def is_json(msg):
    """Whether the content type is JSON (empty, ``application/json`` or ``+json``)."""
    essence = msg.content_type.split(";")[0].strip().lower()
    return essence in ("", "application/json") or essence.endswith("+json")


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def json_of(msg):
    """The JSON payload as a Python value; raises ``invalid_input`` otherwise."""
    if not is_json(msg):
        raise invalid_input(f"expected a JSON payload, got content type `{msg.content_type}`")
    try:
        return _json.loads(bytes(msg.data).decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid_input(f"invalid JSON payload: {e}")


def send(port, data, content_type="application/json", metadata=()):
    """Sends raw bytes on an outport."""
    host.send(port, Message(content_type, bytes(data), list(metadata)))


def send_json(port, value):
    """Sends ``value`` as compact JSON on an outport."""
    text = _json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    send(port, text.encode("utf-8"))


_LEVELS = {
    "trace": LogLevel.TRACE, "debug": LogLevel.DEBUG, "info": LogLevel.INFO,
    "warn": LogLevel.WARN, "error": LogLevel.ERROR,
}


def log(text, level="info"):
    """Writes a log line attributed to this process."""
    host.log(_LEVELS[level], str(text))
