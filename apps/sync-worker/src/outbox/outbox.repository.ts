import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { FieldChange, MutationStatus, VectorClockRecord } from '@syncline/contracts';
import { DATA_SOURCE } from '@syncline/platform';
import type { ChangeRow, EntityKey } from '../mutations/entity-store.repository.js';

export interface PublishedChange extends EntityKey {
  readonly version: number;
  readonly seq: number;
}

/** The outbox side of the change log: what is still unpublished, and recording what was. */
@Injectable()
export class OutboxRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  /** Records the stream sequences of published changes. */
  async markPublished(published: readonly PublishedChange[]): Promise<void> {
    if (published.length === 0) return;
    await this.dataSource.query(
      `UPDATE changes c SET seq = p.seq, published_at = now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
           AS p(tenant, entity_type, entity_id, version, seq)
        WHERE c.tenant = p.tenant AND c.entity_type = p.entity_type AND c.entity_id = p.entity_id
          AND c.version = p.version AND c.seq IS NULL`,
      [
        published.map((p) => p.tenant),
        published.map((p) => p.entityType),
        published.map((p) => p.entityId),
        published.map((p) => p.version),
        published.map((p) => p.seq),
      ],
    );
  }

  /** Entities with changes committed at least `graceMs` ago and still not in CHANGES. */
  async entitiesWithUnpublished(graceMs: number, limit: number): Promise<EntityKey[]> {
    const rows: Array<{ tenant: string; entity_type: string; entity_id: string }> = await this.dataSource.query(
      `SELECT DISTINCT tenant, entity_type, entity_id FROM (
         SELECT tenant, entity_type, entity_id FROM changes
          WHERE seq IS NULL AND created_at < now() - make_interval(secs => $1::double precision / 1000)
          ORDER BY id LIMIT $2
       ) pending`,
      [graceMs, limit],
    );
    return rows.map((row) => ({ tenant: row.tenant, entityType: row.entity_type, entityId: row.entity_id }));
  }

  /** The unpublished changes of one entity in version order, and the sequence of the version before them. */
  async unpublishedOf(key: EntityKey): Promise<{ rows: ChangeRow[]; previousSeq: number | undefined }> {
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT * FROM changes WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND seq IS NULL ORDER BY version`,
      [key.tenant, key.entityType, key.entityId],
    );
    const first = rows[0];
    if (!first) return { rows: [], previousSeq: undefined };
    const firstVersion = Number(first['version']);
    let previousSeq: number | undefined = firstVersion === 1 ? 0 : undefined;
    if (previousSeq === undefined) {
      const previous: Array<{ seq: string | null }> = await this.dataSource.query(
        `SELECT seq FROM changes WHERE tenant = $1 AND entity_type = $2 AND entity_id = $3 AND version = $4`,
        [key.tenant, key.entityType, key.entityId, firstVersion - 1],
      );
      const seq = previous[0]?.seq;
      previousSeq = seq === null || seq === undefined ? undefined : Number(seq);
    }
    return { rows: rows.map(toChangeRow), previousSeq };
  }
}

export function toChangeRow(row: Record<string, unknown>): ChangeRow {
  return {
    tenant: row['tenant'] as string,
    entityType: row['entity_type'] as string,
    entityId: row['entity_id'] as string,
    version: Number(row['version']),
    mutationId: row['mutation_id'] as string,
    clientId: row['client_id'] as string,
    op: row['op'] as string,
    status: row['status'] as MutationStatus,
    changes: row['changes'] as FieldChange[],
    deleted: row['deleted'] as boolean,
    vectorClock: row['vector_clock'] as VectorClockRecord,
    hlc: row['hlc'] as string,
    traceparent: (row['traceparent'] as string | null) ?? null,
    gatewayId: (row['gateway_id'] as string | null) ?? null,
    connectionId: (row['connection_id'] as string | null) ?? null,
    receivedAt: row['received_at'] === null ? null : Number(row['received_at']),
  };
}
