import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A message that can never succeed (it fails its schema): terminated, and kept here for a human. */
@Entity({ name: 'rejected_messages' })
export class RejectedMessageRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'text' }) stream!: string;
  @Column({ name: 'stream_seq', type: 'bigint' }) streamSeq!: string;
  @Column({ type: 'text' }) subject!: string;
  /** The subject's tenant token, as received (null if the subject is too short to have one). */
  @Column({ type: 'text', nullable: true }) tenant!: string | null;
  @Column({ type: 'text' }) reason!: string;
  /** The first bytes of the message, as text with invalid UTF-8 replaced. */
  @Column({ type: 'text' }) payload!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
