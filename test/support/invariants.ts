/**
 * The checks behind design §3's invariants, read from PostgreSQL after a test's load: every
 * accepted mutation in the ledger once (I1, I2), versions 1..n per entity with CHANGES holding
 * each (I3), and a client's copy equal to the server's state (I5).
 */
import { isDeepStrictEqual } from 'node:util';
import { expect } from '@jest/globals';
import type { JsonObject } from '@syncline/contracts';
import { eventually } from './eventually.js';
import type { TestSystem } from './system.js';

/** An entity as PostgreSQL holds it: version and document (null when deleted). */
export type StoredEntity = { version: number; data: JsonObject | null };

/** The server's current state of an entity type: version and document (null when deleted). */
export async function serverState(
  system: TestSystem,
  tenant: string,
  entityType: string,
): Promise<Map<string, StoredEntity>> {
  const rows = await system.query<{ entity_id: string; version: string; data: JsonObject | null; deleted: boolean }>(
    `SELECT entity_id, version, data, deleted FROM entities WHERE tenant = $1 AND entity_type = $2 AND version > 0`,
    [tenant, entityType],
  );
  return new Map(
    rows.map((row) => [row.entity_id, { version: Number(row.version), data: row.deleted ? null : row.data }]),
  );
}

/**
 * I1–I3: every accepted mutation in the ledger exactly once, no mutation applied twice, versions
 * 1..n per entity, and every committed change published to CHANGES (the outbox drained).
 */
export async function expectLedgerAndOrder(
  system: TestSystem,
  tenant: string,
  entityType: string,
  accepted: ReadonlySet<string>,
): Promise<void> {
  await eventually(
    async () => {
      const [row] = await system.query<{ n: string }>(
        `SELECT count(*) AS n FROM mutations WHERE tenant = $1 AND mutation_id = ANY($2)`,
        [tenant, [...accepted]],
      );
      return Number(row?.n) === accepted.size;
    },
    `every accepted ${entityType} mutation in the ledger`,
    30_000,
  );
  await eventually(
    async () => {
      const [row] = await system.query<{ n: string }>(
        `SELECT count(*) AS n FROM changes c JOIN outbox o ON c.id = ANY(o.change_ids)
          WHERE c.tenant = $1 AND c.entity_type = $2`,
        [tenant, entityType],
      );
      return Number(row?.n) === 0;
    },
    `the ${entityType} outbox to drain`,
    15_000,
  ).catch(async (error: unknown) => {
    const stuck = await system.query<{ entity_id: string; version: string }>(
      `SELECT c.entity_id, c.version FROM changes c JOIN outbox o ON c.id = ANY(o.change_ids)
        WHERE c.tenant = $1 AND c.entity_type = $2 ORDER BY c.id LIMIT 20`,
      [tenant, entityType],
    );
    const list = stuck.map((row) => `${row.entity_id}@${row.version}`).join(', ');
    throw new Error(`${String(error)}; committed but unpublished: ${list}`);
  });
  const duplicates = await system.query(
    `SELECT mutation_id FROM changes WHERE tenant = $1 AND entity_type = $2 GROUP BY mutation_id HAVING count(*) > 1`,
    [tenant, entityType],
  );
  expect(duplicates).toEqual([]);
  const versions = await system.query<{ entity_id: string; versions: string[]; current: string }>(
    `SELECT c.entity_id, array_agg(c.version ORDER BY c.version) AS versions, max(e.version) AS current
       FROM changes c JOIN entities e USING (tenant, entity_type, entity_id)
      WHERE c.tenant = $1 AND c.entity_type = $2 GROUP BY c.entity_id`,
    [tenant, entityType],
  );
  for (const { entity_id, versions: list, current } of versions) {
    const expected = Array.from({ length: list.length }, (_, k) => k + 1);
    expect({ entity_id, versions: list.map(Number) }).toEqual({ entity_id, versions: expected });
    expect(Number(current)).toBe(list.length);
  }
}

/**
 * The write stored last wins: each entity's `n` is that of its mutation with the highest
 * MUTATIONS sequence, whichever worker met which mutation first. (A mutation refused for load
 * and sent again is stored after those sent meanwhile: the last one sent need not win.)
 */
export async function expectLastStoredWins(
  system: TestSystem,
  tenant: string,
  entityType: string,
  valueOf: ReadonlyMap<string, number>,
): Promise<void> {
  const lastStored = await system.query<{ entity_id: string; mutation_id: string }>(
    `SELECT DISTINCT ON (entity_id) entity_id, mutation_id FROM changes
      WHERE tenant = $1 AND entity_type = $2 ORDER BY entity_id, mutation_seq DESC`,
    [tenant, entityType],
  );
  const finals = await system.query<{ entity_id: string; n: number }>(
    `SELECT entity_id, (data->>'n')::int AS n FROM entities WHERE tenant = $1 AND entity_type = $2`,
    [tenant, entityType],
  );
  expect(new Map(finals.map((row) => [row.entity_id, row.n]))).toEqual(
    new Map(lastStored.map((row) => [row.entity_id, valueOf.get(row.mutation_id)])),
  );
}

export function sameState(copy: ReadonlyMap<string, StoredEntity>, server: ReadonlyMap<string, StoredEntity>): boolean {
  if (copy.size !== server.size) return false;
  for (const [id, state] of server) {
    const mine = copy.get(id);
    if (!mine || mine.version !== state.version || !isDeepStrictEqual(mine.data, state.data)) return false;
  }
  return true;
}

/** The first entities where a copy differs from the server, one line each. */
export function describeDivergence(
  copy: ReadonlyMap<string, StoredEntity>,
  server: ReadonlyMap<string, StoredEntity>,
): string {
  const lines: string[] = [];
  for (const [id, state] of server) {
    const mine = copy.get(id);
    if (mine?.version !== state.version) lines.push(`  ${id}: client v${mine?.version ?? 0}, server v${state.version}`);
    else if (!isDeepStrictEqual(mine.data, state.data))
      lines.push(
        `  ${id} v${state.version}: client ${JSON.stringify(mine.data)}, server ${JSON.stringify(state.data)}`,
      );
  }
  for (const id of copy.keys()) if (!server.has(id)) lines.push(`  ${id}: only on the client`);
  return lines.slice(0, 20).join('\n');
}

/**
 * The longest time without a delivery within [from, to], given delivery times (epoch ms), and
 * when that pause ended.
 */
export function longestPause(times: readonly number[], from: number, to: number): { ms: number; endedAt: number } {
  let previous = from;
  let longest = { ms: 0, endedAt: from };
  const inWindow = times.filter((time) => time >= from && time <= to).sort((a, b) => a - b);
  for (const time of [...inWindow, to]) {
    if (time - previous > longest.ms) longest = { ms: time - previous, endedAt: time };
    previous = time;
  }
  return longest;
}
