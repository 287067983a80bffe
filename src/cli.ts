import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { AppModule } from './app.module';
import { AuthService } from './auth/auth.service';
import { AppError } from './common/errors';
import { createRootLogger, PinoNestLogger } from './common/logger';
import { checkSignup } from './auth/dto/auth.dto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataSourceOptions } from './database/data-source-options';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { addMigration, pendingSchemaChanges } from './database/migration-files';

const USAGE = `Usage: npm run cli -- <command>
  create-admin --username NAME --email EMAIL [--password PASSWORD]
      Creates an admin (password from --password or the ADMIN_PASSWORD variable).
  migration:run       Apply pending migrations (embedded or DATABASE_URL database)
  migration:revert    Revert the last migration
  migration:create NAME
      Writes an empty migration migrations/<timestamp>-NAME.ts and lists it in migrations/index.ts
  migration:generate NAME [--check]
      Writes the SQL that brings the migrated schema in line with the entities as a new migration
      (listed in migrations/index.ts). Diffs against a fresh in-memory embedded database with
      every migration applied: needs no server and no DATABASE_URL. With --check: writes nothing,
      exits 1 if a migration would be generated.`;

const COMMANDS = [
  'create-admin',
  'migration:run',
  'migration:revert',
  'migration:create',
  'migration:generate',
];

/** The repository's migrations/ folder (this file runs as dist/src/cli.js). */
const MIGRATIONS_DIR = join(__dirname, '..', '..', 'migrations');

/** Formats the new migration and index.ts with the project's Prettier (a dev dependency). */
async function prettify(files: string[]): Promise<void> {
  let prettier: typeof import('prettier');
  try {
    prettier = await import('prettier');
  } catch {
    return; // production install: leave the files as written
  }
  for (const file of files) {
    const options = (await prettier.resolveConfig(file)) ?? {};
    const source = readFileSync(file, 'utf8');
    writeFileSync(file, await prettier.format(source, { ...options, filepath: file }));
  }
}

async function generate(name: string | undefined, check: boolean): Promise<number> {
  const pg = await EmbeddedPostgres.start({ maxConnections: 4 });
  const dataSource = new DataSource({
    ...dataSourceOptions({ url: pg.url, poolSize: 1 }),
    entities: [join(__dirname, '**', '*.entity.js')],
  });
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: 'each' });
    const { up, down } = await pendingSchemaChanges(dataSource);
    if (!up.length) {
      process.stdout.write('No changes: the migrations match the entities\n');
      return 0;
    }
    if (check) {
      process.stdout.write(
        `The entities differ from the migrations; a migration would run:\n${up.map((q) => `  ${q.query};`).join('\n')}\n`,
      );
      return 1;
    }
    const file = addMigration(MIGRATIONS_DIR, name!, up, down);
    await prettify([file, join(MIGRATIONS_DIR, 'index.ts')]);
    process.stdout.write(
      `Wrote ${file} (${up.length} statements) and listed it in migrations/index.ts\n`,
    );
    return 0;
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
    await pg.stop();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!command || !COMMANDS.includes(command)) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  if (command === 'migration:create' || command === 'migration:generate') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { check: { type: 'boolean', default: false } },
    });
    const name = positionals[0];
    const check = command === 'migration:generate' && values.check;
    if (!check && (positionals.length !== 1 || !/^[A-Z][A-Za-z0-9]*$/.test(name))) {
      process.stderr.write(`${command} needs one PascalCase NAME, e.g. AddRoomTopic\n\n${USAGE}\n`);
      return 2;
    }
    if (command === 'migration:generate') return generate(name, check);
    const file = addMigration(MIGRATIONS_DIR, name);
    await prettify([file, join(MIGRATIONS_DIR, 'index.ts')]);
    process.stdout.write(`Wrote ${file} and listed it in migrations/index.ts\n`);
    return 0;
  }
  // The migration commands apply migrations themselves; create-admin migrates a new database
  // as the server would. (Not `= process.env.X`: assigning undefined stores "undefined".)
  if (command !== 'create-admin') process.env.MIGRATIONS_RUN = 'false';
  process.env.LOG_LEVEL ??= 'warn';
  // Warnings and errors only, as readable lines (no colour unless a terminal); a failed start
  // (say, the data directory in use) reaches the caller below as one line.
  const app = await NestFactory.createApplicationContext(AppModule.register(), {
    logger: new PinoNestLogger(createRootLogger(cliLogLevel(process.env.LOG_LEVEL), true), {
      ExceptionHandler: 'debug',
    }),
    abortOnError: false,
  });
  try {
    if (command === 'migration:run') {
      const done = await app.get(DataSource).runMigrations({ transaction: 'each' });
      process.stdout.write(
        done.length
          ? done.map((m) => `applied ${m.name}`).join('\n') + '\n'
          : 'No pending migrations\n',
      );
      return 0;
    }
    if (command === 'migration:revert') {
      await app.get(DataSource).undoLastMigration({ transaction: 'each' });
      process.stdout.write('Reverted the last migration\n');
      return 0;
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        username: { type: 'string' },
        email: { type: 'string' },
        password: { type: 'string' },
      },
    });
    const { dto, errors } = await checkSignup({
      ...values,
      password: values.password ?? process.env.ADMIN_PASSWORD,
    });
    if (Object.keys(errors).length) {
      process.stderr.write(`Invalid input: ${JSON.stringify(errors)}\n`);
      return 2;
    }
    const user = await app.get(AuthService).createUser(dto, 'admin');
    process.stdout.write(`Created admin "${user.username}" (${user.id})\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof AppError ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await app.close();
  }
}

/** LOG_LEVEL if it is a level (the app's validation reports it otherwise), else warn. */
function cliLogLevel(level: string | undefined): string {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  return level && levels.includes(level) ? level : 'warn';
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
