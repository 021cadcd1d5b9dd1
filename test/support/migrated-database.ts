/**
 * A fresh PostgreSQL database with the current schema, for `*.pg.spec.ts` tests: cloned from a
 * template that is migrated once per set of migrations (`CREATE DATABASE … TEMPLATE`), which
 * takes a fraction of running the migrations for every test file.
 *
 *   const db = await migratedDatabase();
 *   try { … db.dataSource … } finally { await db.drop(); }
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { MIGRATIONS, createDataSource, runMigrations } from '@syncline/persistence';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface MigratedDatabase {
  readonly name: string;
  readonly url: string;
  /** Initialized, with a pool of `poolSize` connections. */
  readonly dataSource: DataSource;
  drop(): Promise<void>;
}

export async function migratedDatabase(options: { poolSize?: number } = {}): Promise<MigratedDatabase> {
  const adminUrl = process.env['DATABASE_URL'] ?? DEFAULT_DATABASE_URL;
  const template = await ensureTemplate(adminUrl);
  const name = `syncline_pg_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`));
  const url = databaseUrl(adminUrl, name);
  const dataSource = createDataSource({ url, poolSize: options.poolSize ?? 8, applicationName: 'pg-spec' });
  await dataSource.initialize();
  return {
    name,
    url,
    dataSource,
    async drop() {
      await dataSource.destroy();
      await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

/** The template for the current migrations, created (and migrated) by the first test that needs it. */
async function ensureTemplate(adminUrl: string): Promise<string> {
  const digest = createHash('sha256')
    .update(MIGRATIONS.map((migration) => migration.name).join(','))
    .digest('hex')
    .slice(0, 12);
  const template = `syncline_template_${digest}`;
  return withAdmin(adminUrl, async (client) => {
    // Two test processes creating it at once would collide: one creates, the other waits.
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [template]);
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
      if (rowCount === 0) {
        await client.query(`CREATE DATABASE "${template}"`);
        const dataSource = createDataSource({
          url: databaseUrl(adminUrl, template),
          poolSize: 2,
          applicationName: 'pg-spec-template',
        });
        await dataSource.initialize();
        try {
          await runMigrations(dataSource);
        } finally {
          await dataSource.destroy();
        }
      }
      return template;
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [template]);
    }
  });
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
