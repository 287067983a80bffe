import { getMetadataStorage } from 'class-validator';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Env, validateEnv } from '../src/config/env';

/**
 * `.env.example` and the configuration table in docs/configuration.md document every variable
 * Parlor reads (src/config/env.ts), no more, and the defaults both give are the real ones.
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

/** docs/configuration.md's table: variable → its Default cell. */
function configurationTable(): Record<string, string> {
  const page = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  return Object.fromEntries(
    [...page.matchAll(/^\| `([A-Z][A-Z0-9_]*)` *\| *([^|]*?) *\|/gm)].map(([, key, cell]) => [
      key,
      cell,
    ]),
  );
}

describe('configuration docs', () => {
  it('.env.example lists every variable of env.ts, and nothing else', () => {
    expect(Object.keys(envExample()).sort()).toEqual(envVariables());
  });

  it(".env.example's values are the defaults", () => {
    expect(validateEnv(envExample())).toEqual(validateEnv({}));
  });

  it("docs/configuration.md's table lists every variable of env.ts, and nothing else", () => {
    expect(Object.keys(configurationTable()).sort()).toEqual(envVariables());
  });

  it("docs/configuration.md's defaults are the defaults", () => {
    const defaults = validateEnv({}) as unknown as Record<string, unknown>;
    for (const [key, cell] of Object.entries(configurationTable())) {
      const literal = /^`([^`]*)`$/.exec(cell);
      if (literal) {
        // The documented default, given as the setting, changes nothing.
        const given = validateEnv({ [key]: literal[1] }) as unknown as Record<string, unknown>;
        expect({ [key]: given[key] }).toEqual({ [key]: defaults[key] });
      } else {
        // "_(empty)_", "_(generated)_": no value of its own.
        expect({ [key]: cell }).toEqual({
          [key]: expect.stringMatching(/^_\((empty|generated)\)_$/),
        });
        expect([undefined, '', []]).toContainEqual(defaults[key]);
      }
    }
  });
});
