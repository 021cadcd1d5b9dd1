import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Remembers how far retention has pruned the change log, so a reader can tell "no change of this
 * type since your cursor" from "the changes since your cursor are gone".
 */
export class ChangeLogHorizon1732579200000 implements MigrationInterface {
  name = 'ChangeLogHorizon1732579200000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE change_log_horizon (
        id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        pruned_through_seq bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`INSERT INTO change_log_horizon (id) VALUES (1)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE change_log_horizon`);
  }
}
