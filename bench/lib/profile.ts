/**
 * Reads a V8 .cpuprofile (what server-hook.ts writes) and names the hot functions: self time
 * per function, self time per package (pg, typeorm, socket.io, …, or Parlor's own files), and
 * inclusive time of Parlor's own functions.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Hot {
  name: string;
  pct: number;
}

export interface ProfileSummary {
  samples: number;
  ms: number;
  selfByFunction: Hot[];
  selfByPackage: Hot[];
  inclusiveParlor: Hot[];
}

function where(url: string): { pkg: string; file: string } {
  if (!url) return { pkg: '(native/V8)', file: '' };
  if (url.startsWith('node:')) return { pkg: 'node core', file: url.slice(5) };
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return { pkg, file: rest.slice(rest[0].startsWith('@') ? 2 : 1).join('/') };
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return { pkg: 'parlor (src/)', file: url.slice(src + 1) };
  return { pkg: 'other', file: url.replace(/^file:\/\//, '') };
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const key = (n: ProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const { pkg, file: f } = where(url);
    const name = functionName || (url ? '(anonymous)' : '');
    if (!url) return functionName || '(unknown)';
    return `${name} ${pkg === 'parlor (src/)' ? f : `${pkg}/${f}`}:${lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  // Each sample weighs the same (one sampling interval): a single delta can be huge (the
  // profiler's own start/stop calls), and would otherwise dominate the picture.
  const deltas = [...p.timeDeltas].filter((d) => d > 0).sort((a, b) => a - b);
  const interval = deltas.length ? deltas[Math.floor(deltas.length / 2)] : 1;
  p.samples.forEach((id) => {
    const dt = interval;
    const n = byId.get(id);
    if (!n) return;
    if (n.callFrame.functionName === '(idle)') {
      idle += dt;
      return;
    }
    total += dt;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + dt);
    const pk = n.callFrame.url ? where(n.callFrame.url).pkg : n.callFrame.functionName;
    pkgSelf.set(pk, (pkgSelf.get(pk) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur)!;
      if (where(node.callFrame.url).pkg !== 'parlor (src/)') continue;
      const ck = key(node);
      if (seen.has(ck)) continue;
      seen.add(ck);
      incl.set(ck, (incl.get(ck) ?? 0) + dt);
    }
  });
  const rank = (m: Map<string, number>): Hot[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, t]) => ({ name, pct: total ? Math.round((t / total) * 1000) / 10 : 0 }));
  return {
    samples: p.samples.length,
    ms: Math.round((total + idle) / 1000),
    selfByFunction: rank(self),
    selfByPackage: rank(pkgSelf),
    inclusiveParlor: rank(incl),
  };
}

export function printProfile(title: string, s: ProfileSummary): string {
  const lines = [`${title}: ${s.samples} samples over ${s.ms} ms (percent of non-idle CPU)`];
  lines.push('  self time by package:');
  for (const h of s.selfByPackage.slice(0, 12))
    lines.push(`    ${h.pct.toFixed(1).padStart(5)} %  ${h.name}`);
  lines.push('  self time by function:');
  for (const h of s.selfByFunction.slice(0, 20))
    lines.push(`    ${h.pct.toFixed(1).padStart(5)} %  ${h.name}`);
  lines.push('  inclusive time, Parlor functions:');
  for (const h of s.inclusiveParlor.slice(0, 15))
    lines.push(`    ${h.pct.toFixed(1).padStart(5)} %  ${h.name}`);
  return lines.join('\n');
}
