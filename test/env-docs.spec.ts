import { getMetadataStorage } from 'class-validator';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Env, validateEnv } from '../src/config/env';

/**
 * `.env.example` and the README's configuration table document every variable Parlor reads
 * (src/config/env.ts), no more, and `.env.example`'s values are the real defaults.
 */
const ROOT = process.cwd();

/** Every variable `Env` validates, optional ones included (they have no default to list). */
function envVariables(): string[] {
  const metadata = getMetadataStorage().getTargetValidationMetadatas(Env, '', true, false);
  return [...new Set(metadata.map((m) => m.propertyName))].sort();
}

function envExample(): Record<string, string> {
  const text = readFileSync(join(ROOT, '.env.example'), 'utf8');
  return Object.fromEntries(
    [...text.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(([, key, value]) => [key, value]),
  );
}

describe('configuration docs', () => {
  it('.env.example lists every variable of env.ts, and nothing else', () => {
    expect(Object.keys(envExample()).sort()).toEqual(envVariables());
  });

  it(".env.example's values are the defaults", () => {
    expect(validateEnv(envExample())).toEqual(validateEnv({}));
  });

  it("the README's configuration table lists every variable of env.ts, and nothing else", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]*)` *\|/gm)].map(([, key]) => key);
    expect(rows.sort()).toEqual(envVariables());
  });
});
