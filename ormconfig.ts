import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './src/database/data-source-options';

/**
 * The DataSource the TypeORM CLI uses (`npm run migration:run|revert|generate`). It needs a
 * server: DATABASE_URL. (The embedded database runs migrations itself at start-up.)
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
