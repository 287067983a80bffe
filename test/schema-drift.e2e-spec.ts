import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DataSource, getMetadataArgsStorage } from 'typeorm';
import { pendingSchemaChanges } from '../src/database/migration-files';
import { startApp, type TestApp } from './support/app';

/**
 * The entities describe the schema the migrations build, exactly: `npm run migration:generate`
 * (TypeORM's schema diff, src/cli.ts) on a freshly migrated database has nothing to write. A
 * column length, default, index, check, unique or foreign key changed in one and not the other
 * fails here, naming the statement a generated migration would run.
 */
describe('schema drift: entities vs migrations', () => {
  let t: TestApp;
  let db: DataSource;

  beforeAll(async () => {
    t = await startApp(); // a fresh database with every migration applied at boot
    db = t.app.get(DataSource);
  });
  afterAll(() => t.close());

  it('migration:generate would write no statement', async () => {
    const { up } = await pendingSchemaChanges(db);
    expect(up.map((q) => q.query)).toEqual([]);
  });

  it('every table has an entity (the diff ignores tables no entity names)', async () => {
    const tables = await db.query<{ table_name: string }[]>(
      `SELECT table_name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
          AND table_name NOT IN ('migrations', 'typeorm_metadata')`,
    );
    expect(tables.map((r) => r.table_name).sort()).toEqual(
      db.entityMetadatas.map((m) => m.tableName).sort(),
    );
  });

  it('the app registers every *.entity.ts (the CLI loads them by file name)', async () => {
    const src = join(process.cwd(), 'src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.entity.ts'),
    );
    const modules = await Promise.all(
      files.map(async (file) => ({
        file,
        exports: (await import(pathToFileURL(join(src, file)).href)) as Record<string, unknown>,
      })),
    );
    // After the imports: a file nothing imported yet declares its entities only now.
    const entityTargets = new Set(getMetadataArgsStorage().tables.map((table) => table.target));
    const registered = new Set<unknown>(db.entityMetadatas.map((m) => m.target));
    const declared: string[] = [];
    const unregistered: string[] = [];
    for (const { file, exports } of modules) {
      for (const value of Object.values(exports)) {
        if (typeof value !== 'function' || !entityTargets.has(value)) continue;
        declared.push(`${file}: ${value.name}`);
        if (!registered.has(value)) unregistered.push(`${file}: ${value.name}`);
      }
    }
    expect(declared.length).toBeGreaterThanOrEqual(13);
    expect(unregistered).toEqual([]);
  });

  // Last: it changes this suite's own database.
  it('notices drift: a changed length, a missing index and a missing check each show up', async () => {
    await db.query(`ALTER TABLE rooms ALTER COLUMN theme TYPE varchar(201)`);
    await db.query(`DROP INDEX room_bans_user`);
    await db.query(`ALTER TABLE reports DROP CONSTRAINT reports_status_check`);
    const up = (await pendingSchemaChanges(db)).up.map((q) => q.query).join('\n');
    expect(up).toMatch(/"theme" character varying\(200\)/);
    expect(up).toMatch(/CREATE INDEX "room_bans_user"/);
    expect(up).toMatch(/CONSTRAINT "reports_status_check" CHECK/);
  });
});
