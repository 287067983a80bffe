/**
 * Heap snapshots by constructor: the difference between two snapshots of the same server,
 * divided by the number of connections opened in between, says what one connection keeps alive.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

export type ByConstructor = Map<string, { count: number; bytes: number }>;

export function byConstructor(file: string): ByConstructor {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const out: ByConstructor = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + fType]];
    let name: string;
    if (type === 'object' || type === 'native') name = s.strings[s.nodes[i + fName]];
    else if (type === 'closure') name = `(closure) ${s.strings[s.nodes[i + fName]] || 'anonymous'}`;
    else name = `(${type})`;
    const e = out.get(name) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + fSize];
    out.set(name, e);
  }
  return out;
}

export interface PerConnection {
  name: string;
  perConn: number;
  bytesPerConn: number;
}

export function perConnection(
  before: ByConstructor,
  after: ByConstructor,
  conns: number,
  top = 20,
): PerConnection[] {
  return [...after.entries()]
    .map(([name, a]) => {
      const b = before.get(name) ?? { count: 0, bytes: 0 };
      return {
        name,
        perConn: (a.count - b.count) / conns,
        bytesPerConn: (a.bytes - b.bytes) / conns,
      };
    })
    .sort((x, y) => y.bytesPerConn - x.bytesPerConn)
    .slice(0, top);
}
