import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { JsonObject, MutationMessage, VectorClockRecord } from '@syncline/contracts';
import { RejectedMessageRecord } from '@syncline/persistence';
import { DATA_SOURCE } from '@syncline/platform';

const KEPT_BYTES = 8 * 1024;

@Injectable()
export class RejectedMessageRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async record(stream: string, streamSeq: number, subject: string, reason: string, data: Uint8Array): Promise<void> {
    // Invalid UTF-8 and NUL would be refused by a text column: keep a readable, bounded copy.
    const payload = new TextDecoder('utf-8', { fatal: false })
      .decode(data.subarray(0, KEPT_BYTES))
      .replaceAll('\u0000', '\uFFFD');
    await this.dataSource.getRepository(RejectedMessageRecord).insert({
      stream,
      streamSeq: String(streamSeq),
      subject,
      // `<ns>.mut.<tenant>.…`: whose administrators see it.
      tenant: subject.split('.')[2]?.slice(0, 256) || null,
      reason: reason.slice(0, 2000).replaceAll('\u0000', '\uFFFD'),
      payload,
    });
  }

  /**
   * Records a mutation the database refused as `rejected` in the ledger, so a resend gets the
   * same answer, and returns the entity as it stands, which the client rolls back to.
   */
  async refuse(
    mutation: MutationMessage,
  ): Promise<{ version: number; data: JsonObject | null; vectorClock: VectorClockRecord }> {
    const rows: Array<{ version: string; data: JsonObject | null; vector_clock: VectorClockRecord | null }> =
      await this.dataSource.query(
        `WITH current AS (
           SELECT version, CASE WHEN deleted THEN NULL ELSE data END AS data, vector_clock FROM entities
            WHERE tenant = $1 AND entity_type = $3 AND entity_id = $4
         ), recorded AS (
           INSERT INTO mutations (tenant, mutation_id, entity_type, entity_id, status, version)
           VALUES ($1, $2, $3, $4, 'rejected', COALESCE((SELECT version FROM current), 0))
           ON CONFLICT DO NOTHING
         )
         SELECT COALESCE((SELECT version FROM current), 0) AS version,
                (SELECT data FROM current) AS data, (SELECT vector_clock FROM current) AS vector_clock`,
        [mutation.tenant, mutation.mutationId, mutation.entityType, mutation.entityId],
      );
    const row = rows[0];
    return { version: Number(row?.version ?? 0), data: row?.data ?? null, vectorClock: row?.vector_clock ?? {} };
  }
}
