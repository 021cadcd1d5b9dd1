import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type {
  ConflictsPage,
  ConflictsRequest,
  PolicyUpdate,
  RejectedMessagesPage,
  RejectedMessagesRequest,
} from '@syncline/contracts';
import { DATA_SOURCE } from '@syncline/platform';

const DEFAULT_CONFLICTS_PAGE = 50;
const DEFAULT_REJECTED_PAGE = 50;

interface RejectedMessageRow {
  id: string;
  stream: string;
  stream_seq: string;
  subject: string;
  reason: string;
  payload: string;
  created_at: Date;
}

/** Writes conflict policies and reads recorded conflicts and refused messages, for administrators. */
@Injectable()
export class AdminRepository {
  constructor(@Inject(DATA_SOURCE) private readonly dataSource: DataSource) {}

  async policyUpdatedAt(tenant: string, entityType: string): Promise<Date | undefined> {
    const rows: Array<{ updated_at: Date }> = await this.dataSource.query(
      `SELECT updated_at FROM conflict_policies WHERE tenant = $1 AND entity_type = $2`,
      [tenant, entityType],
    );
    return rows[0]?.updated_at;
  }

  async putPolicy({ tenant, entityType, strategy }: PolicyUpdate): Promise<Date> {
    const rows: Array<{ updated_at: Date }> = await this.dataSource.query(
      `INSERT INTO conflict_policies (tenant, entity_type, strategy, updated_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (tenant, entity_type) DO UPDATE SET strategy = EXCLUDED.strategy, updated_at = now()
       RETURNING updated_at`,
      [tenant, entityType, strategy],
    );
    return rows[0]?.updated_at as Date;
  }

  /** Newest first, paged backwards by id. */
  async conflicts(request: ConflictsRequest): Promise<ConflictsPage> {
    const limit = request.limit ?? DEFAULT_CONFLICTS_PAGE;
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT * FROM conflicts
        WHERE tenant = $1
          AND ($2::text IS NULL OR entity_type = $2)
          AND ($3::text IS NULL OR entity_id = $3)
          AND ($4::bigint IS NULL OR id < $4)
        ORDER BY id DESC LIMIT $5`,
      [request.tenant, request.entityType ?? null, request.entityId ?? null, request.before ?? null, limit + 1],
    );
    const page = rows.slice(0, limit).map(toRecordedConflict);
    const last = page[page.length - 1];
    return { conflicts: page, ...(rows.length > limit && last ? { nextBefore: last.id } : {}) };
  }

  /** The messages the sync workers terminated, of one tenant, newest first, paged backwards by id. */
  async rejectedMessages(request: RejectedMessagesRequest): Promise<RejectedMessagesPage> {
    const limit = request.limit ?? DEFAULT_REJECTED_PAGE;
    const rows: RejectedMessageRow[] = await this.dataSource.query(
      `SELECT id, stream, stream_seq, subject, reason, payload, created_at FROM rejected_messages
        WHERE tenant = $1 AND ($2::bigint IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3`,
      [request.tenant, request.before ?? null, limit + 1],
    );
    const messages = rows.slice(0, limit).map((row) => ({
      id: String(row.id),
      stream: row.stream,
      streamSeq: Number(row.stream_seq),
      subject: row.subject,
      reason: row.reason,
      payload: row.payload,
      rejectedAt: row.created_at.toISOString(),
    }));
    const last = messages[messages.length - 1];
    return { messages, ...(rows.length > limit && last ? { nextBefore: last.id } : {}) };
  }
}

function toRecordedConflict(row: Record<string, unknown>): ConflictsPage['conflicts'][number] {
  return {
    id: String(row['id']),
    entityType: row['entity_type'] as string,
    entityId: row['entity_id'] as string,
    mutationId: row['mutation_id'] as string,
    strategy: row['strategy'] as ConflictsPage['conflicts'][number]['strategy'],
    winner: row['winner'] as ConflictsPage['conflicts'][number]['winner'],
    baseVersion: Number(row['base_version']),
    serverVersion: Number(row['server_version']),
    resultVersion: Number(row['result_version']),
    base: (row['base'] ?? null) as ConflictsPage['conflicts'][number]['base'],
    serverData: (row['server_data'] ?? null) as ConflictsPage['conflicts'][number]['serverData'],
    clientData: (row['client_data'] ?? null) as ConflictsPage['conflicts'][number]['clientData'],
    result: (row['result'] ?? null) as ConflictsPage['conflicts'][number]['result'],
    contested: row['contested'] as string[],
    createdAt: (row['created_at'] as Date).toISOString(),
  };
}
