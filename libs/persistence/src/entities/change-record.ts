import { Column, Entity, Index, PrimaryGeneratedColumn, Unique } from 'typeorm';
import type { FieldChange, MutationOp, MutationStatus, VectorClockRecord } from '@syncline/contracts';

/**
 * The change log: one row per entity version, written once, in the transaction that makes the
 * version. The `outbox` table says which rows are not yet in CHANGES, `change_positions` where
 * the published ones are.
 */
@Entity({ name: 'changes' })
@Unique('changes_entity_version', ['tenant', 'entityType', 'entityId', 'version'])
@Index('changes_created_at', ['createdAt'])
export class ChangeRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'text' }) tenant!: string;
  @Column({ name: 'entity_type', type: 'text' }) entityType!: string;
  @Column({ name: 'entity_id', type: 'text' }) entityId!: string;
  @Column({ type: 'bigint' }) version!: string;
  @Column({ name: 'mutation_id', type: 'text' }) mutationId!: string;
  @Column({ name: 'client_id', type: 'text' }) clientId!: string;
  @Column({ type: 'text' }) op!: MutationOp;
  @Column({ type: 'text' }) status!: MutationStatus;
  @Column({ type: 'jsonb' }) changes!: FieldChange[];
  @Column({ type: 'boolean' }) deleted!: boolean;
  @Column({ name: 'vector_clock', type: 'jsonb' }) vectorClock!: VectorClockRecord;
  @Column({ type: 'text' }) hlc!: string;
  @Column({ type: 'text', nullable: true }) traceparent!: string | null;
  @Column({ name: 'gateway_id', type: 'text', nullable: true }) gatewayId!: string | null;
  @Column({ name: 'connection_id', type: 'text', nullable: true }) connectionId!: string | null;
  @Column({ name: 'received_at', type: 'bigint', nullable: true }) receivedAt!: string | null;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
