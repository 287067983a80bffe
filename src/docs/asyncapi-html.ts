/**
 * A readable, self-contained HTML page for the AsyncAPI document: no scripts, no CDN. Every
 * value from the document is escaped.
 */
import type { AsyncApiDocument } from './asyncapi';
import type { JsonSchema } from './schema';

const esc = (v: unknown) =>
  String(v).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/** `code` spans for backticks, the rest escaped. */
const md = (text: unknown) =>
  esc(text ?? '')
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\n\n/g, '<br><br>');

const refName = (ref: string) => ref.replace('#/components/schemas/', '');
const link = (ref: string) => `<a href="#schema-${esc(refName(ref))}">${esc(refName(ref))}</a>`;

/** A one-line type: `string (uuid)`, `array of MessageDto`, `integer | null`, `'left' | 'removed'`. */
function typeOf(schema: JsonSchema | undefined): string {
  if (!schema) return 'any';
  if (typeof schema.$ref === 'string') return link(schema.$ref);
  if (Array.isArray(schema.oneOf)) return (schema.oneOf as JsonSchema[]).map(typeOf).join(' | ');
  if (Array.isArray(schema.allOf)) return (schema.allOf as JsonSchema[]).map(typeOf).join(' & ');
  if (schema.const !== undefined) return `<code>${esc(JSON.stringify(schema.const))}</code>`;
  if (Array.isArray(schema.enum))
    return schema.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(' | ');
  if (schema.type === 'array') return `array of ${typeOf(schema.items as JsonSchema)}`;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? 'any'];
  const fmt = schema.format ? ` (${esc(schema.format)})` : '';
  return types.map((t) => esc(t) + (t === 'null' ? '' : fmt)).join(' | ');
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = [];
  const add = (label: string, key: string) => {
    if (schema[key] !== undefined) parts.push(`${label} ${esc(schema[key])}`);
  };
  add('min length', 'minLength');
  add('max length', 'maxLength');
  add('≥', 'minimum');
  add('≤', 'maximum');
  if (schema.pattern) parts.push(`pattern <code>${esc(schema.pattern)}</code>`);
  return parts.length ? `<div class="c">${parts.join(', ')}</div>` : '';
}

/** A property table for an object schema (nested inline objects get their own table). */
function table(schema: JsonSchema, doc: AsyncApiDocument, depth = 0): string {
  if (typeof schema.$ref === 'string' && depth === 0) {
    const target = doc.components.schemas[refName(schema.$ref)];
    return `<p>${link(schema.$ref)}</p>${target ? table(target, doc, depth + 1) : ''}`;
  }
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  if (!props) return `<p>${typeOf(schema)}</p>`;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const rows = Object.entries(props).map(([name, p]) => {
    const nested = p.type === 'object' && p.properties ? table(p, doc, depth + 1) : '';
    return (
      `<tr><td><code>${esc(name)}</code>${required.has(name) ? '' : ' <span class="opt">optional</span>'}</td>` +
      `<td>${nested ? 'object' : typeOf(p)}${constraints(p)}</td>` +
      `<td>${md(p.description ?? '')}${nested}</td></tr>`
    );
  });
  return `<table><tr><th>field</th><th>type</th><th>notes</th></tr>${rows.join('')}</table>`;
}

/** The `data` of a `{ ok: true, data }` acknowledgement. */
function ackData(ack: JsonSchema): JsonSchema {
  const ok = (ack.oneOf as JsonSchema[])[0];
  return (ok.properties as Record<string, JsonSchema>).data;
}

export function renderAsyncApiHtml(doc: AsyncApiDocument): string {
  const info = doc.info as { title: string; version: string; description: string };
  const messages = doc.components.messages;
  const ops = Object.entries(doc.operations);
  const commands = ops.filter(([, o]) => o.action === 'receive').map(([n]) => n);
  const events = ops.filter(([, o]) => o.action === 'send').map(([n]) => n);

  const command = (name: string) => {
    const m = messages[name];
    const data = ackData(messages[`${name}.ack`].payload as JsonSchema);
    return (
      `<section id="cmd-${esc(name)}"><h3><code>${esc(name)}</code></h3><p>${md(m.summary)}</p>` +
      `<h4>payload</h4>${table(m.payload as JsonSchema, doc)}` +
      `<h4>ack data</h4>${data.type === 'null' ? '<p><code>null</code></p>' : table(data, doc)}</section>`
    );
  };
  const event = (name: string) => {
    const m = messages[name];
    return (
      `<section id="evt-${esc(name)}"><h3><code>${esc(name)}</code></h3><p>${md(m.summary)}</p>` +
      `${table(m.payload as JsonSchema, doc)}</section>`
    );
  };
  const schema = ([name, s]: [string, JsonSchema]) =>
    `<section id="schema-${esc(name)}"><h3>${esc(name)}</h3>${s.description ? `<p>${md(s.description)}</p>` : ''}${table(s, doc, 1)}</section>`;
  const toc = (ids: string[], prefix: string) =>
    ids.map((n) => `<a href="#${prefix}-${esc(n)}"><code>${esc(n)}</code></a>`).join(' · ');

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(info.title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
h1{margin-bottom:0}h2{border-bottom:2px solid #dde3ee;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin:1.6rem 0 .3rem}h4{margin:.8rem 0 .3rem;color:#556}
code{background:#f1f4f9;padding:0 .25rem;border-radius:3px;font-size:.92em}
table{border-collapse:collapse;width:100%;margin:.3rem 0}td,th{border:1px solid #dde3ee;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fb;font-weight:600}.opt{color:#889;font-size:.85em}.c{color:#667;font-size:.85em}
section{margin-bottom:1rem}nav{line-height:2}a{color:#2456c7}
</style></head><body>
<h1>${esc(info.title)}</h1><p>AsyncAPI ${esc(doc.asyncapi)} · version ${esc(info.version)} ·
<a href="/docs/asyncapi.json">JSON document</a> · <a href="/docs">REST API (Swagger)</a></p>
<p>${md(info.description)}</p>
<h2>Commands (client → server, with acknowledgement)</h2><nav>${toc(commands, 'cmd')}</nav>
${commands.map(command).join('\n')}
<h2>Events (server → client)</h2><nav>${toc(events, 'evt')}</nav>
${events.map(event).join('\n')}
<h2>Schemas</h2>
${Object.entries(doc.components.schemas).map(schema).join('\n')}
</body></html>
`;
}
