import { mkdtempSync, readFileSync, rmSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { migrations } from '../migrations';
import {
  addMigration,
  migrationFiles,
  nextTimestamp,
  registerMigration,
} from '../src/database/migration-files';

/**
 * migrations/index.ts is the explicit list the app, the CLI and Jest load: a migration file
 * missing from it would never run anywhere. `npm run migration:create|generate` list new files
 * there; this checks nobody forgot.
 */
const DIR = join(process.cwd(), 'migrations');

describe('migrations/index.ts', () => {
  it('lists every migration file in migrations/, in file (timestamp) order', async () => {
    const files = migrationFiles(DIR);
    expect(files.length).toBeGreaterThan(0);
    const listed = new Set<unknown>(migrations);
    const inFiles: unknown[] = [];
    for (const file of files) {
      const exported = Object.values(
        (await import(pathToFileURL(join(DIR, file)).href)) as Record<string, unknown>,
      ).filter((v) => typeof v === 'function');
      expect({ file, classes: exported.length }).toEqual({ file, classes: 1 });
      const unlisted = exported.filter((cls) => !listed.has(cls));
      expect({ file, unlisted: unlisted.map((c) => (c as { name: string }).name) }).toEqual({
        file,
        unlisted: [],
      });
      inFiles.push(...exported);
    }
    // Nothing listed that has no file of its own, and the list runs in timestamp order.
    expect(migrations).toEqual(inFiles);
  });

  it('every file name is <13-digit timestamp>-<PascalName>.ts (other names are not picked up)', async () => {
    const { readdirSync } = await import('node:fs');
    const odd = readdirSync(DIR).filter(
      (f) => f !== 'index.ts' && !migrationFiles(DIR).includes(f),
    );
    expect(odd).toEqual([]);
  });
});

describe('migration:create (addMigration)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'parlor-migrations-'));
    cpSync(DIR, dir, { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a timestamped empty migration after the newest one and lists it last', () => {
    const before = migrationFiles(dir);
    const file = addMigration(dir, 'AddRoomTopic');
    const after = migrationFiles(dir);
    expect(after).toHaveLength(before.length + 1);
    const added = after[after.length - 1]; // sorts after every existing file
    expect(file).toBe(join(dir, added));
    const [, stamp] = /^(\d{13})-AddRoomTopic\.ts$/.exec(added)!;
    const cls = `AddRoomTopic${stamp}`;
    const source = readFileSync(file, 'utf8');
    expect(source).toContain(`export class ${cls} implements MigrationInterface`);
    expect(source).toContain(`name = '${cls}';`);
    const index = readFileSync(join(dir, 'index.ts'), 'utf8');
    expect(index).toContain(`import { ${cls} } from './${stamp}-AddRoomTopic';`);
    const previous = (migrations[migrations.length - 1] as { name: string }).name;
    expect(index).toMatch(new RegExp(`  ${previous},\\n  ${cls},\\n\\];`));
  });

  it('refuses names that are not PascalCase, writing nothing', () => {
    const index = readFileSync(join(dir, 'index.ts'), 'utf8');
    expect(() => addMigration(dir, 'add-topic')).toThrow(/PascalCase/);
    expect(readFileSync(join(dir, 'index.ts'), 'utf8')).toBe(index);
    expect(migrationFiles(dir)).toEqual(migrationFiles(DIR));
    expect(existsSync(join(dir, 'add-topic.ts'))).toBe(false);
  });

  it('timestamps never go backwards, so files sort in the order they were made', () => {
    expect(nextTimestamp(['1763780400000-X.ts'], 1000)).toBe(1763780400001);
    expect(nextTimestamp(['1763780400000-X.ts'], 1900000000000)).toBe(1900000000000);
  });

  it('refuses an index.ts of another shape instead of writing a broken one', () => {
    expect(() => registerMigration('export const migrations = [];\n', 'A1', '1-A')).toThrow(
      /expected shape/,
    );
  });
});
