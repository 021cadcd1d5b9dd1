import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { ConflictStrategy } from '@syncline/contracts';

/** The strategy chosen for one entity type of one tenant; absent means the configured default. */
@Entity({ name: 'conflict_policies' })
export class ConflictPolicyRecord {
  @PrimaryColumn({ type: 'text' }) tenant!: string;
  @PrimaryColumn({ name: 'entity_type', type: 'text' }) entityType!: string;
  @Column({ type: 'text' }) strategy!: ConflictStrategy;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
