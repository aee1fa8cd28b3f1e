// {{component}}: counts the messages on `in` and sends each on `out` with its number.
import { definition as def, port, jsonOf, sendJson } from './wasmflo.js';

let seen = 0;

export function definition() {
  return def('{{component}}', {
    label: 'Numbers the messages it forwards',
    inports: [port('in', 'any', 'Any JSON message')],
    outports: [port('out', 'object', '{"n": count, "message": the message}')],
  });
}

export function start() {}

export function process(_port, msg) {
  const message = jsonOf(msg);
  seen += 1;
  sendJson('out', { n: seen, message });
}

export function onTimer(_id) {}
