// js/Template: renders each JSON object on `in` through the `template` parameter.
// `{{name}}` is replaced by the field's value, `{{a.b.0}}` follows a path, and
// `{{name|fixed:1}}`, `{{name|upper}}`, `{{name|lower}}`, `{{name|json}}` format it.
// A field the object lacks is refused as invalid input, naming the field.
import { definition as def, port, invalidInput, jsonOf, sendJson } from './wasmflo.js';

let template = '{{value}}';

const FILTERS = {
  upper: (v) => String(v).toUpperCase(),
  lower: (v) => String(v).toLowerCase(),
  json: (v) => JSON.stringify(v),
  fixed: (v, digits) => Number(v).toFixed(Number(digits ?? 0)),
};

function lookup(object, path) {
  let value = object;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) {
      throw invalidInput(`the message has no field \`${path}\``);
    }
    value = value[key];
  }
  return value;
}

function render(object) {
  return template.replace(/\{\{\s*([^}|\s]+)\s*(?:\|\s*(\w+)(?::([^}\s]+))?\s*)?\}\}/g, (_, path, filter, arg) => {
    const value = lookup(object, path);
    if (filter === undefined) return typeof value === 'string' ? value : JSON.stringify(value);
    const f = FILTERS[filter];
    if (!f) throw invalidInput(`unknown filter \`${filter}\` in the template`);
    return f(value, arg);
  });
}

export function definition() {
  return def('js/Template', {
    label: 'Renders JSON objects as text (JavaScript)',
    icon: 'file-text',
    inports: [
      port('in', 'object', 'A JSON object'),
      port('template', 'string', 'Text with {{field}} or {{field|filter:arg}} placeholders', { parameter: true }),
    ],
    outports: [
      port('out', 'string', 'The rendered text'),
      port('error', 'object', '{"error": reason, "port": port} for each refused message'),
    ],
  });
}

export function start() {}

export function process(portName, msg) {
  const value = jsonOf(msg);
  if (portName === 'in') {
    if (value === null || typeof value !== 'object') throw invalidInput('expected a JSON object');
    sendJson('out', render(value));
  } else if (portName === 'template') {
    if (typeof value !== 'string') throw invalidInput('template must be a JSON string');
    template = value;
  } else {
    throw invalidInput(`unknown inport \`${portName}\``);
  }
}

export function onTimer(_id) {}
