import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Where in MUTATIONS each change's mutation was stored (its stream sequence, and which stream: a
 * stream created anew starts counting again), and the highest such sequence applied to each
 * entity. A mutation that reaches its entity after one stored later (a worker died holding it and
 * JetStream sent it again after its ack wait, or another worker took the later one first) is
 * recognised by it, and keeps only the fields those later mutations did not write: it never undoes
 * a write stored after it. One of which nothing is left is recorded as superseded; the
 * ledger keeps that stable code, so a resend is answered the same way.
 */
export class MutationStreamOrder1732924800000 implements MigrationInterface {
  name = 'MutationStreamOrder1732924800000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE entities ADD COLUMN applied_seq bigint NOT NULL DEFAULT 0,
                            ADD COLUMN applied_stream text NOT NULL DEFAULT ''`,
    );
    await db.query(
      `ALTER TABLE changes ADD COLUMN mutation_seq bigint NOT NULL DEFAULT 0,
                           ADD COLUMN mutation_stream text NOT NULL DEFAULT ''`,
    );
    // What an entity's mutations stored after a late one wrote: a short range of this index.
    await db.query(`CREATE INDEX changes_by_mutation_seq ON changes (tenant, entity_type, entity_id, mutation_seq)`);
    await db.query(`ALTER TABLE mutations ADD COLUMN code text`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE mutations DROP COLUMN code`);
    await db.query(`DROP INDEX changes_by_mutation_seq`);
    await db.query(`ALTER TABLE changes DROP COLUMN mutation_seq, DROP COLUMN mutation_stream`);
    await db.query(`ALTER TABLE entities DROP COLUMN applied_seq, DROP COLUMN applied_stream`);
  }
}
