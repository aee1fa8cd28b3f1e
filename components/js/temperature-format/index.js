// js/Format: turns a temperature in °C into "Temperature: 22.3 C".
// One decimal, rounded half away from zero; a value that rounds to zero prints as 0.0
// (never -0.0): the same outputs as temperature/Format (Rust).
import { definition as def, port, invalidInput, jsonOf, sendJson } from './wasmflo.js';

const UNITS = { C: (c) => c, F: (c) => (c * 9) / 5 + 32, K: (c) => c + 273.15 };
let unit = 'C';

// Math.round rounds half up (-2.5 -> -2); Rust's f64::round rounds half away from zero.
function roundHalfAway(x) {
  let t = Math.trunc(x);
  if (Math.abs(x - t) >= 0.5) t += Math.sign(x);
  return t;
}

// One decimal of the exact binary value, as Rust's "{:.1}" prints it. toFixed does the
// same below 1e21 and switches to exponent notation above, where values are integers.
function oneDecimal(value) {
  if (!Number.isFinite(value)) return null;
  const tenths = roundHalfAway(value * 10);
  if (!Number.isFinite(tenths)) return null;
  const rounded = tenths / 10 + 0;
  return Math.abs(rounded) < 1e21 ? rounded.toFixed(1) : `${BigInt(rounded)}.0`;
}

export function definition() {
  return def('js/Format', {
    label: 'Formats a temperature as text (JavaScript)',
    icon: 'font',
    inports: [
      port('in', 'number', 'Temperature in °C'),
      port('unit', 'string', '"C" (default), "F" or "K"', { parameter: true }),
    ],
    outports: [
      port('out', 'string', '"Temperature: 22.3 C"'),
      port('error', 'object', '{"error": reason, "port": port} for each refused message'),
    ],
  });
}

export function start() {}

export function process(portName, msg) {
  const value = jsonOf(msg);
  if (portName === 'in') {
    if (typeof value !== 'number') throw invalidInput('expected a temperature in °C as a JSON number');
    const text = oneDecimal(UNITS[unit](value));
    if (text === null) throw invalidInput(`temperature ${value} °C is not finite in ${unit}`);
    sendJson('out', `Temperature: ${text} ${unit}`);
  } else if (portName === 'unit') {
    if (typeof value !== 'string') throw invalidInput('unit must be the JSON string "C", "F" or "K"');
    if (!Object.hasOwn(UNITS, value)) throw invalidInput(`unknown unit "${value}": expected "C", "F" or "K"`);
    unit = value;
  } else {
    throw invalidInput(`unknown inport \`${portName}\``);
  }
}

export function onTimer(_id) {}
