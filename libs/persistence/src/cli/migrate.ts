import { databaseEnvSchema, loadConfig } from '@syncline/platform';
import { createDataSource, runMigrations } from '../data-source.js';

/** `npm run migrate`: applies pending migrations to DATABASE_URL. */
const config = loadConfig(databaseEnvSchema);
const dataSource = createDataSource({ url: config.DATABASE_URL, poolSize: 2, applicationName: 'syncline-migrate' });
await dataSource.initialize();
const applied = await runMigrations(dataSource);
console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
await dataSource.destroy();
