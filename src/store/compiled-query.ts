/**
 * Queries built and compiled once. Kysely builds an AST and compiles it to SQL on every call,
 * which on the hot paths (a create, a `GET /v1/videos/{id}`) cost about a tenth of the CPU and
 * much of the garbage. A query here is built once with placeholders; each call only binds its
 * values into the compiled SQL's parameter list (the SQL text then also hits SQLite's prepared
 * statement cache).
 */
import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';

/**
 * Runs a read on SQLite at once, without Kysely's connection hand-off (several promise turns per
 * query): returns the rows, or `undefined` when it cannot (a transaction is open on the
 * connection, whose writes a read from outside must not see; or the SQL is not a read), and the
 * query then goes through Kysely as usual, waiting for the transaction to end.
 */
export type DirectReader = (sql: string, parameters: readonly unknown[]) => unknown[] | undefined;

/** The direct reader of each SQLite database handle (`openStore` registers it; PostgreSQL has none). */
const directReaders = new WeakMap<object, DirectReader>();

export function registerDirectReader(db: object, reader: DirectReader): void {
  directReaders.set(db, reader);
}

function execute<Row>(db: Executor, compiled: CompiledQuery, parameters: unknown[]): Promise<QueryResult<Row>> {
  const rows = directReaders.get(db)?.(compiled.sql, parameters);
  if (rows) return Promise.resolve({ rows: rows as Row[] });
  return db.executeQuery(CompiledQuery.raw(compiled.sql, parameters)) as Promise<QueryResult<Row>>;
}

/** Stands for the `index`-th argument while the query is compiled. */
class Slot {
  constructor(readonly index: number) {}
}

/** What a query is executed on: the store's database or a transaction of it. */
type Executor = Pick<Kysely<unknown>, 'executeQuery'>;

/**
 * A query of a fixed shape, compiled once. `build` receives one placeholder per argument and
 * must use each only as a plain value (`where('id', '=', id)`), never to pick a column or vary
 * the shape; values that are not placeholders stay as compiled.
 */
export function compiledOnce<Args extends unknown[], Row>(
  build: (...placeholders: Args) => Compilable<Row>,
  arity: Args['length'],
): (db: Executor, ...args: Args) => Promise<QueryResult<Row>> {
  let compiled: CompiledQuery<Row> | undefined;
  const compile = () => {
    const slots = Array.from({ length: arity }, (_, index) => new Slot(index)) as unknown as Args;
    return build(...slots).compile();
  };
  return (db, ...args) => {
    compiled ??= compile();
    const parameters = compiled.parameters.map((value) => (value instanceof Slot ? args[value.index] : value));
    return execute<Row>(db, compiled, parameters);
  };
}

/**
 * Queries whose shape varies with their input (which columns an update sets, how many phases a
 * condition lists), compiled once per shape. `shape` names the shape (callers build it from what
 * changes the SQL: column names, list lengths, null or not); `values` are bound in the order
 * `build` uses them.
 */
export class CompiledShapes {
  private readonly compiled = new Map<string, CompiledQuery>();

  execute<Row>(db: Executor, shape: string, values: readonly unknown[], build: (slots: readonly unknown[]) => Compilable<Row>): Promise<QueryResult<Row>> {
    let compiled = this.compiled.get(shape);
    if (!compiled) {
      compiled = build(values.map((_, index) => new Slot(index))).compile();
      this.compiled.set(shape, compiled);
    }
    const parameters = compiled.parameters.map((value) => (value instanceof Slot ? values[value.index] : value));
    return execute<Row>(db, compiled, parameters);
  }
}

/**
 * What a shape's `build` writes: each of `columns` bound to the placeholder of the same position
 * (`slots[i]`), for `values()` or `set()`.
 */
export function slotted<Row>(columns: readonly string[], slots: readonly unknown[]): Row {
  return Object.fromEntries(columns.map((column, index) => [column, slots[index]])) as Row;
}

/** The keys of `row` whose value is defined, in order: what an insert or update of it writes. */
export function definedKeys(row: object): string[] {
  return Object.keys(row).filter((key) => (row as Record<string, unknown>)[key] !== undefined);
}
