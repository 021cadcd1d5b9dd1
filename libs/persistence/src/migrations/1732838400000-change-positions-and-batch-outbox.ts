import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A change-log row is written once and never updated.
 *
 * Before, each row was the outbox entry itself and got its CHANGES sequence written back after
 * publishing: a second write of a wide row, with every index of `changes` updated again, for each
 * change. Now:
 * - `outbox` holds one row per committed batch (the ids of its changes), inserted in the batch's
 *   statement and deleted once all of them are in CHANGES;
 * - `change_positions` maps an entity type's stream sequences to entity versions, for reading
 *   the change log by cursor beyond what CHANGES still holds. Its rows are narrow and recorded
 *   in bulk, after publishing.
 *
 * `changes.created_at` and `mutations.created_at` only serve retention, which deletes old rows in
 * insertion order: BRIN indexes do that at a fraction of a B-tree's cost per insert. Entity rows
 * are updated in place on every change: pages keep room for the new row version (HOT updates).
 * `syncline_expect_rows` lets a batch's single statement check that every entity row it updates
 * still has the version the batch was computed on, and roll the whole statement back otherwise.
 */
export class ChangePositionsAndBatchOutbox1732838400000 implements MigrationInterface {
  name = 'ChangePositionsAndBatchOutbox1732838400000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE change_positions (
        tenant text NOT NULL,
        entity_type text NOT NULL,
        seq bigint NOT NULL,
        entity_id text NOT NULL,
        version bigint NOT NULL,
        PRIMARY KEY (tenant, entity_type, seq)
      )`);
    // One entity's history reads its versions' positions.
    await db.query(
      `CREATE INDEX change_positions_by_entity ON change_positions (tenant, entity_type, entity_id, version)`,
    );
    await db.query(`
      INSERT INTO change_positions (tenant, entity_type, seq, entity_id, version)
      SELECT tenant, entity_type, seq, entity_id, version FROM changes WHERE seq IS NOT NULL`);
    await db.query(`
      CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        change_ids bigint[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`
      INSERT INTO outbox (change_ids)
      SELECT array_agg(id ORDER BY id) FROM changes WHERE seq IS NULL HAVING count(*) > 0`);
    await db.query(`DROP INDEX changes_unpublished`);
    await db.query(`DROP INDEX changes_by_type_seq`);
    await db.query(`ALTER TABLE changes DROP COLUMN seq, DROP COLUMN published_at`);
    await db.query(`DROP INDEX changes_created_at`);
    await db.query(`CREATE INDEX changes_created_at ON changes USING brin (created_at)`);
    await db.query(`DROP INDEX mutations_created_at`);
    await db.query(`CREATE INDEX mutations_created_at ON mutations USING brin (created_at)`);
    await db.query(`ALTER TABLE entities SET (fillfactor = 80)`);
    await db.query(`
      CREATE FUNCTION syncline_expect_rows(matched bigint, expected bigint) RETURNS bigint
      LANGUAGE plpgsql AS $$
      BEGIN
        IF matched <> expected THEN
          RAISE EXCEPTION 'stale entity version: % of % entity rows still had the version the batch was computed on',
            matched, expected USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN matched;
      END $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION syncline_expect_rows(bigint, bigint)`);
    await db.query(`ALTER TABLE entities RESET (fillfactor)`);
    await db.query(`DROP INDEX mutations_created_at`);
    await db.query(`CREATE INDEX mutations_created_at ON mutations (created_at)`);
    await db.query(`DROP INDEX changes_created_at`);
    await db.query(`CREATE INDEX changes_created_at ON changes (created_at)`);
    await db.query(`ALTER TABLE changes ADD COLUMN seq bigint, ADD COLUMN published_at timestamptz`);
    await db.query(`
      UPDATE changes c SET seq = p.seq, published_at = now() FROM change_positions p
       WHERE p.tenant = c.tenant AND p.entity_type = c.entity_type AND p.entity_id = c.entity_id
         AND p.version = c.version`);
    await db.query(`CREATE INDEX changes_by_type_seq ON changes (tenant, entity_type, seq) WHERE seq IS NOT NULL`);
    await db.query(`CREATE INDEX changes_unpublished ON changes (id) WHERE seq IS NULL`);
    await db.query(`DROP TABLE outbox`);
    await db.query(`DROP TABLE change_positions`);
  }
}
