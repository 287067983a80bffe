import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';

/**
 * The migrations/ folder as source files: `npm run migration:create` and `migration:generate`
 * write a new file here and list it in migrations/index.ts (the app, the CLI and Jest load that
 * explicit list, so a file missing from it would silently never run; test/migrations.spec.ts
 * checks that every file is listed).
 */

/** `1763780000000-Users.ts` → timestamp 1763780000000, name Users. */
export const MIGRATION_FILE = /^(\d{13})-([A-Z][A-Za-z0-9]*)\.ts$/;

export function migrationFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => MIGRATION_FILE.test(f))
    .sort();
}

/** Now, or one past the newest existing migration: the order of the files is the order they run. */
export function nextTimestamp(files: string[], now = Date.now()): number {
  const last = files
    .map((f) => Number(MIGRATION_FILE.exec(f)![1]))
    .reduce((a, b) => Math.max(a, b), 0);
  return Math.max(now, last + 1);
}

/** One statement of a migration: SQL and, rarely, its parameters. */
export interface MigrationQuery {
  query: string;
  parameters?: unknown[];
}

export function migrationSource(
  className: string,
  up: MigrationQuery[],
  down: MigrationQuery[],
): string {
  const call = (q: MigrationQuery) =>
    `    await queryRunner.query(${JSON.stringify(q.query)}${
      q.parameters?.length ? `, ${JSON.stringify(q.parameters)}` : ''
    });`;
  // An empty one names its argument _queryRunner (lint-clean): rename it when writing the body.
  const method = (name: 'up' | 'down', queries: MigrationQuery[]) =>
    queries.length
      ? `  public async ${name}(queryRunner: QueryRunner): Promise<void> {\n${queries.map(call).join('\n')}\n  }`
      : `  public async ${name}(_queryRunner: QueryRunner): Promise<void> {\n` +
        `    // TODO, e.g. await queryRunner.query(\`ALTER TABLE rooms ${
          name === 'up' ? 'ADD COLUMN topic text' : 'DROP COLUMN topic'
        }\`);\n  }`;
  return `import { MigrationInterface, QueryRunner } from 'typeorm';

export class ${className} implements MigrationInterface {
  name = '${className}';

${method('up', up)}

${method('down', down)}
}
`;
}

/** migrations/index.ts with `className` from `./fileBase` imported and appended to the list. */
export function registerMigration(index: string, className: string, fileBase: string): string {
  const lines = index.split('\n');
  const lastImport = lines.reduce(
    (at, line, i) => (/^import .* from '\.\//.test(line) ? i : at),
    -1,
  );
  const close = lines.findIndex((line, i) => i > lastImport && /^\];/.test(line));
  if (lastImport < 0 || close < 0 || !/export const migrations = \[/.test(index)) {
    throw new Error(
      'migrations/index.ts is not in the expected shape (imports, then `export const migrations = [ ... ];`)',
    );
  }
  lines.splice(close, 0, `  ${className},`);
  lines.splice(lastImport + 1, 0, `import { ${className} } from './${fileBase}';`);
  return lines.join('\n');
}

/** Writes migrations/<timestamp>-<Name>.ts and lists it in migrations/index.ts; returns the file. */
export function addMigration(
  dir: string,
  name: string,
  up: MigrationQuery[] = [],
  down: MigrationQuery[] = [],
): string {
  if (!/^[A-Z][A-Za-z0-9]*$/.test(name)) {
    throw new Error(
      `Migration name "${name}" must be PascalCase letters and digits, e.g. AddRoomTopic`,
    );
  }
  const timestamp = nextTimestamp(migrationFiles(dir));
  const fileBase = `${timestamp}-${name}`;
  const className = `${name}${timestamp}`;
  const indexPath = join(dir, 'index.ts');
  const index = registerMigration(readFileSync(indexPath, 'utf8'), className, fileBase);
  writeFileSync(join(dir, `${fileBase}.ts`), migrationSource(className, up, down), { flag: 'wx' });
  writeFileSync(indexPath, index);
  return join(dir, `${fileBase}.ts`);
}

/**
 * The SQL that would bring a database migrated to the latest migration in line with the
 * entities (TypeORM's schema diff, as `typeorm migration:generate` computes it).
 */
export async function pendingSchemaChanges(
  dataSource: DataSource,
): Promise<{ up: MigrationQuery[]; down: MigrationQuery[] }> {
  // TypeORM reads generated columns' expressions from its typeorm_metadata table, which these
  // hand-written migrations do not keep. Filled here (meant for a scratch database) with each
  // generated column's expression as PostgreSQL prints it, so the diff compares the entities'
  // `asExpression` with the real one.
  await dataSource.query(
    `CREATE TABLE IF NOT EXISTS typeorm_metadata (type varchar NOT NULL, database varchar,
      schema varchar, "table" varchar, name varchar, value text)`,
  );
  await dataSource.query(
    `INSERT INTO typeorm_metadata (type, database, schema, "table", name, value)
     SELECT 'GENERATED_COLUMN', current_database(), c.table_schema, c.table_name, c.column_name,
            c.generation_expression
       FROM information_schema.columns c
      WHERE c.is_generated = 'ALWAYS' AND c.table_schema = current_schema()
        AND NOT EXISTS (SELECT 1 FROM typeorm_metadata m WHERE m.type = 'GENERATED_COLUMN'
              AND m.schema = c.table_schema AND m."table" = c.table_name AND m.name = c.column_name)`,
  );
  const sql = await dataSource.driver.createSchemaBuilder().log();
  const plain = (q: { query: string; parameters?: unknown[] }) => ({
    query: q.query,
    parameters: q.parameters,
  });
  return { up: sql.upQueries.map(plain), down: sql.downQueries.map(plain).reverse() };
}
