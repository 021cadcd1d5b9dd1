import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The index by stream sequence only needs published changes. Made partial, it also stops being
 * a candidate for lookups by entity version, which must use the unique (entity, version) index:
 * on a young table with stale statistics the planner otherwise scanned a whole entity type.
 */
export class PublishedChangesIndex1732752000000 implements MigrationInterface {
  name = 'PublishedChangesIndex1732752000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX changes_by_type_seq`);
    await db.query(`CREATE INDEX changes_by_type_seq ON changes (tenant, entity_type, seq) WHERE seq IS NOT NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX changes_by_type_seq`);
    await db.query(`CREATE INDEX changes_by_type_seq ON changes (tenant, entity_type, seq)`);
  }
}
