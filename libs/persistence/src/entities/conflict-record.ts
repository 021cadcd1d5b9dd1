import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { ConflictStrategy, JsonObject } from '@syncline/contracts';

/** Every resolved conflict, with both sides, the base and the result, for inspection. */
@Entity({ name: 'conflicts' })
@Index('conflicts_by_entity', ['tenant', 'entityType', 'entityId', 'createdAt'])
export class ConflictRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'text' }) tenant!: string;
  @Column({ name: 'entity_type', type: 'text' }) entityType!: string;
  @Column({ name: 'entity_id', type: 'text' }) entityId!: string;
  @Column({ name: 'mutation_id', type: 'text' }) mutationId!: string;
  @Column({ type: 'text' }) strategy!: ConflictStrategy;
  @Column({ type: 'text' }) winner!: 'client' | 'server' | 'merged';
  @Column({ name: 'base_version', type: 'bigint' }) baseVersion!: string;
  @Column({ name: 'server_version', type: 'bigint' }) serverVersion!: string;
  @Column({ name: 'result_version', type: 'bigint' }) resultVersion!: string;
  @Column({ type: 'jsonb', nullable: true }) base!: JsonObject | null;
  @Column({ name: 'server_data', type: 'jsonb', nullable: true }) serverData!: JsonObject | null;
  @Column({ name: 'client_data', type: 'jsonb', nullable: true }) clientData!: JsonObject | null;
  @Column({ type: 'jsonb', nullable: true }) result!: JsonObject | null;
  @Column({ type: 'jsonb' }) contested!: string[];
  @Column({ name: 'server_hlc', type: 'text' }) serverHlc!: string;
  @Column({ name: 'client_hlc', type: 'text' }) clientHlc!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
