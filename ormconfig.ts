import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './src/database/data-source-options';

/**
 * A DataSource for running the TypeORM CLI by hand against a server (DATABASE_URL), e.g.
 * `npx typeorm migration:show -d dist/ormconfig.js`. The npm scripts do not use it: they go
 * through src/cli.ts, which works on the embedded database too (docs/development.md).
 */
const url = process.env.DATABASE_URL;
if (!url) {
  throw new Error(
    'Set DATABASE_URL to run TypeORM CLI commands (e.g. postgres://localhost/parlor)',
  );
}
export default new DataSource({
  ...dataSourceOptions({ url }),
  entities: [__dirname + '/src/**/*.entity.js'],
});
