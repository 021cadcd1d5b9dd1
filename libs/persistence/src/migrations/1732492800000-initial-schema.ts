import type { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1732492800000 implements MigrationInterface {
  name = 'InitialSchema1732492800000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE entities (
        tenant text NOT NULL,
        entity_type text NOT NULL,
        entity_id text NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        data jsonb,
        deleted boolean NOT NULL DEFAULT false,
        vector_clock jsonb NOT NULL DEFAULT '{}',
        hlc text NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL DEFAULT now(),
        published_version bigint NOT NULL DEFAULT 0,
        published_seq bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, entity_type, entity_id)
      )`);
    await db.query(`
      CREATE TABLE changes (
        id bigserial PRIMARY KEY,
        tenant text NOT NULL,
        entity_type text NOT NULL,
        entity_id text NOT NULL,
        version bigint NOT NULL,
        mutation_id text NOT NULL,
        client_id text NOT NULL,
        op text NOT NULL,
        status text NOT NULL,
        changes jsonb NOT NULL,
        deleted boolean NOT NULL,
        vector_clock jsonb NOT NULL,
        hlc text NOT NULL,
        traceparent text,
        gateway_id text,
        connection_id text,
        received_at bigint,
        created_at timestamptz NOT NULL DEFAULT now(),
        seq bigint,
        published_at timestamptz,
        CONSTRAINT changes_entity_version UNIQUE (tenant, entity_type, entity_id, version)
      )`);
    // The outbox relay scans only what is still unpublished.
    await db.query(`CREATE INDEX changes_unpublished ON changes (id) WHERE seq IS NULL`);
    await db.query(`CREATE INDEX changes_by_type_seq ON changes (tenant, entity_type, seq)`);
    await db.query(`CREATE INDEX changes_created_at ON changes (created_at)`);
    await db.query(`
      CREATE TABLE mutations (
        tenant text NOT NULL,
        mutation_id text NOT NULL,
        entity_type text NOT NULL,
        entity_id text NOT NULL,
        status text NOT NULL,
        version bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, mutation_id)
      )`);
    await db.query(`CREATE INDEX mutations_created_at ON mutations (created_at)`);
    await db.query(`
      CREATE TABLE conflicts (
        id bigserial PRIMARY KEY,
        tenant text NOT NULL,
        entity_type text NOT NULL,
        entity_id text NOT NULL,
        mutation_id text NOT NULL,
        strategy text NOT NULL,
        winner text NOT NULL,
        base_version bigint NOT NULL,
        server_version bigint NOT NULL,
        result_version bigint NOT NULL,
        base jsonb,
        server_data jsonb,
        client_data jsonb,
        result jsonb,
        contested jsonb NOT NULL,
        server_hlc text NOT NULL,
        client_hlc text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX conflicts_by_entity ON conflicts (tenant, entity_type, entity_id, created_at)`);
    await db.query(`
      CREATE TABLE conflict_policies (
        tenant text NOT NULL,
        entity_type text NOT NULL,
        strategy text NOT NULL CHECK (strategy IN ('last-write-wins', 'server-wins', 'client-wins', 'merge')),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, entity_type)
      )`);
    await db.query(`
      CREATE TABLE rejected_messages (
        id bigserial PRIMARY KEY,
        stream text NOT NULL,
        stream_seq bigint NOT NULL,
        subject text NOT NULL,
        reason text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(db: QueryRunner): Promise<void> {
    for (const table of ['rejected_messages', 'conflict_policies', 'conflicts', 'mutations', 'changes', 'entities']) {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
    }
  }
}
