import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { MutationStatus } from '@syncline/contracts';

/** The idempotency ledger: one row per processed mutation id, whatever became of it. */
@Entity({ name: 'mutations' })
@Index('mutations_created_at', ['createdAt'])
export class MutationRecord {
  @PrimaryColumn({ type: 'text' }) tenant!: string;
  @PrimaryColumn({ name: 'mutation_id', type: 'text' }) mutationId!: string;
  @Column({ name: 'entity_type', type: 'text' }) entityType!: string;
  @Column({ name: 'entity_id', type: 'text' }) entityId!: string;
  @Column({ type: 'text' }) status!: MutationStatus;
  /** The entity version the mutation produced, or the server's version when it was rejected. */
  @Column({ type: 'bigint' }) version!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
