// Parse and validate an AsyncAPI document with @asyncapi/parser (the official parser: JSON Schema of
// the spec, $refs, and its Spectral rules). Prints a JSON report; exit 0 when there is no error.
//
//   node validate.mjs <path/to/asyncapi.yaml>
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const path = process.argv[2];
if (!path) {
  console.error('usage: node validate.mjs <asyncapi.yaml>');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, 'utf8'), { source: path });
const report = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: d.code,
  message: d.message,
  path: d.path.join('.'),
}));
const errors = report.filter((d) => d.severity === 'error');
console.log(JSON.stringify({
  version: document ? document.version() : null,
  channels: document ? document.channels().length : 0,
  messages: document ? document.allMessages().length : 0,
  schemas: document ? document.allSchemas().length : 0,
  errors,
  warnings: report.filter((d) => d.severity === 'warning'),
}, null, 2));
process.exit(document && errors.length === 0 ? 0 : 1);
