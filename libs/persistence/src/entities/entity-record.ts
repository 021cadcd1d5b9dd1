import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { JsonObject, VectorClockRecord } from '@syncline/contracts';

/** Current state of one entity: the server of record. */
@Entity({ name: 'entities' })
export class EntityRecord {
  @PrimaryColumn({ type: 'text' }) tenant!: string;
  @PrimaryColumn({ name: 'entity_type', type: 'text' }) entityType!: string;
  @PrimaryColumn({ name: 'entity_id', type: 'text' }) entityId!: string;
  /** 0 until the first change commits; then 1, 2, 3, ... without gaps. */
  @Column({ type: 'bigint', default: 0 }) version!: string;
  @Column({ type: 'jsonb', nullable: true }) data!: JsonObject | null;
  @Column({ type: 'boolean', default: false }) deleted!: boolean;
  @Column({ name: 'vector_clock', type: 'jsonb', default: {} }) vectorClock!: VectorClockRecord;
  @Column({ type: 'text', default: '' }) hlc!: string;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
