import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { AppModule } from './app.module';
import { AuthService } from './auth/auth.service';
import { AppError } from './common/errors';
import { createRootLogger, PinoNestLogger } from './common/logger';
import { validate } from 'class-validator';
import { plainToInstance } from 'class-transformer';
import { SignupDto } from './auth/dto/auth.dto';
import { flattenValidationErrors } from './common/validation';

const USAGE = `Usage: npm run cli -- <command>
  create-admin --username NAME --email EMAIL [--password PASSWORD]
      Creates an admin (password from --password or the ADMIN_PASSWORD variable).
  migration:run       Apply pending migrations (embedded or DATABASE_URL database)
  migration:revert    Revert the last migration`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || !['create-admin', 'migration:run', 'migration:revert'].includes(command)) {
    process.stderr.write(USAGE + '\n');
    return 2;
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
    const dto = plainToInstance(SignupDto, {
      ...values,
      password: values.password ?? process.env.ADMIN_PASSWORD,
    });
    const errors = await validate(dto);
    if (errors.length) {
      process.stderr.write(`Invalid input: ${JSON.stringify(flattenValidationErrors(errors))}\n`);
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
