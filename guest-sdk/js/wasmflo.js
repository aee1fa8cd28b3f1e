// wasmflo guest SDK for JavaScript: small helpers over the bindings ComponentizeJS
// generates from wit/participant.wit. A participant module exports `definition`,
// `start`, `process(port, msg)` and `onTimer(id)`; refuse a message by throwing
// `invalidInput(...)`, `unavailable(...)` or `internal(...)`. Messages are
// `{ contentType, data: Uint8Array, metadata: [[key, value], ...] }`.
import { send as hostSend, log as hostLog } from 'wasmflo:participant/host@0.1.0';

/** One inport or outport. */
export function port(id, type = 'any', description = '', { parameter = false, schema } = {}) {
  return { id, type, description, schema, parameter };
}

/** What `definition()` returns. */
export function definition(component, { label = '', icon = 'cog', inports = [], outports = [] } = {}) {
  return { component, label, icon, inports, outports };
}

/** `throw invalidInput('...')`: the message is malformed; retrying will not help. */
export const invalidInput = (reason) => ({ kind: 'invalid-input', reason });
/** `throw unavailable('...')`: a transient condition. */
export const unavailable = (reason) => ({ kind: 'unavailable', reason });
/** `throw internal('...')`: the participant itself failed. */
export const internal = (reason) => ({ kind: 'internal', reason });

/** Whether the content type is JSON (empty, application/json or +json). */
export function isJson(msg) {
  const essence = msg.contentType.split(';')[0].trim().toLowerCase();
  return essence === '' || essence === 'application/json' || essence.endsWith('+json');
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** The JSON payload as a value; throws `invalidInput` otherwise. */
export function jsonOf(msg) {
  if (!isJson(msg)) throw invalidInput(`expected a JSON payload, got content type \`${msg.contentType}\``);
  try {
    return JSON.parse(decoder.decode(msg.data));
  } catch (e) {
    throw invalidInput(`invalid JSON payload: ${e.message}`);
  }
}

/** Sends raw bytes on an outport. */
export function send(port, data, contentType = 'application/json', metadata = []) {
  hostSend(port, { contentType, data, metadata });
}

/** Sends `value` as JSON on an outport. */
export function sendJson(port, value) {
  send(port, encoder.encode(JSON.stringify(value)));
}

/** Writes a log line attributed to this process (`console.log` goes nowhere). */
export function log(text, level = 'info') {
  hostLog(level, String(text));
}
