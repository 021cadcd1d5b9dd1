/**
 * One typed description per table: its columns, the row type they give, and the SQL fragments a
 * repository builds its statements from. Column lists and row mappers are derived from it, never
 * written again by hand. Migrations stay the history of how the schema got here; a table module
 * says what it is now, and the PostgreSQL tests check that the two agree.
 */
export type PgType = 'text' | 'bigint' | 'boolean' | 'jsonb' | 'timestamptz' | 'bigint[]';

export interface ColumnDef<T> {
  /** The column's name in PostgreSQL. */
  readonly name: string;
  readonly type: PgType;
  readonly nullable: boolean;
  /** Type only: what a row holds in this column. */
  readonly sample?: T;
}

export const column = {
  /** A union of string literals where the column holds one of them. */
  text: <T extends string = string>(name: string): ColumnDef<T> => ({ name, type: 'text', nullable: false }),
  /** Read as a JavaScript number: sequences and versions stay far below 2^53. */
  bigint: (name: string): ColumnDef<number> => ({ name, type: 'bigint', nullable: false }),
  bigintArray: (name: string): ColumnDef<number[]> => ({ name, type: 'bigint[]', nullable: false }),
  boolean: (name: string): ColumnDef<boolean> => ({ name, type: 'boolean', nullable: false }),
  timestamptz: (name: string): ColumnDef<Date> => ({ name, type: 'timestamptz', nullable: false }),
  jsonb: <T>(name: string): ColumnDef<T> => ({ name, type: 'jsonb', nullable: false }),
};

export function nullable<T>(def: ColumnDef<T>): ColumnDef<T | null> {
  return { name: def.name, type: def.type, nullable: true };
}

type Columns = Record<string, ColumnDef<unknown>>;
export type RowOf<C extends Columns> = { -readonly [K in keyof C]: C[K] extends ColumnDef<infer T> ? T : never };

export class Table<C extends Columns> {
  constructor(
    readonly name: string,
    readonly columns: C,
  ) {}

  /** `tenant, entity_type, …`, optionally qualified by an alias. */
  columnList(keys: readonly (keyof C & string)[], alias?: string): string {
    return keys.map((key) => (alias ? `${alias}.${this.columns[key]!.name}` : this.columns[key]!.name)).join(', ');
  }

  /**
   * `jsonb_to_recordset($1::jsonb) AS alias("tenant" text, …)`: a JSON array of rows keyed by the
   * row type's property names, sent as one parameter however many rows a batch has.
   */
  recordset(param: string, keys: readonly (keyof C & string)[], alias = 'x'): string {
    const definitions = keys.map((key) => `"${key}" ${this.columns[key]!.type}`).join(', ');
    return `jsonb_to_recordset(${param}::jsonb) AS ${alias}(${definitions})`;
  }

  /** `INSERT INTO table (…) SELECT … FROM jsonb_to_recordset(param)`: every row of the array. */
  insertFromJson(param: string, keys: readonly (keyof C & string)[]): string {
    const values = keys.map((key) => `x."${key}"`).join(', ');
    return `INSERT INTO ${this.name} (${this.columnList(keys)}) SELECT ${values} FROM ${this.recordset(param, keys)}`;
  }

  /** A result row (column names) as the row type (property names); `bigint` columns become numbers. */
  read<K extends keyof C & string>(row: Record<string, unknown>, keys: readonly K[]): Pick<RowOf<C>, K> {
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const def = this.columns[key]!;
      const value = row[def.name];
      out[key] =
        value === null || value === undefined
          ? null
          : def.type === 'bigint'
            ? Number(value)
            : def.type === 'bigint[]'
              ? (value as unknown[]).map(Number)
              : value;
    }
    return out as Pick<RowOf<C>, K>;
  }

  keys(): (keyof C & string)[] {
    return Object.keys(this.columns) as (keyof C & string)[];
  }
}
