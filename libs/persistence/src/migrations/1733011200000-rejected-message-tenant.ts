import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The tenant a rejected message was published for (its subject's third token, as received), so
 * that a tenant's administrators can list what their backend services sent and was refused. A
 * subject has no tenant token only if it is too short to, and then the column stays null.
 */
export class RejectedMessageTenant1733011200000 implements MigrationInterface {
  name = 'RejectedMessageTenant1733011200000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE rejected_messages ADD COLUMN tenant text`);
    await db.query(`UPDATE rejected_messages SET tenant = NULLIF(split_part(subject, '.', 3), '')`);
    await db.query(`CREATE INDEX rejected_messages_by_tenant ON rejected_messages (tenant, id)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX rejected_messages_by_tenant`);
    await db.query(`ALTER TABLE rejected_messages DROP COLUMN tenant`);
  }
}
