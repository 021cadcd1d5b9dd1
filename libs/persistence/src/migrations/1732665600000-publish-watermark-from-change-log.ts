import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The stream sequence of an entity's latest published version is read from its change-log row
 * instead of being copied onto the entity: recording a publication then touches one indexed row
 * of `changes` and nothing else.
 */
export class PublishWatermarkFromChangeLog1732665600000 implements MigrationInterface {
  name = 'PublishWatermarkFromChangeLog1732665600000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE entities DROP COLUMN published_version, DROP COLUMN published_seq`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE entities ADD COLUMN published_version bigint NOT NULL DEFAULT 0,
                            ADD COLUMN published_seq bigint NOT NULL DEFAULT 0`,
    );
  }
}
