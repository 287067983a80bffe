/**
 * The one place that reads PostgreSQL error codes (SQLSTATE). Stores translate them into
 * AppErrors with these helpers instead of comparing code strings themselves.
 */
export const PG = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  NOT_NULL_VIOLATION: '23502',
  CHECK_VIOLATION: '23514',
  /** NUL (U+0000) in text, or a byte sequence invalid in the database encoding. */
  CHARACTER_NOT_IN_REPERTOIRE: '22021',
  UNTRANSLATABLE_CHARACTER: '22P05',
  INVALID_TEXT_REPRESENTATION: '22P02',
  DEADLOCK_DETECTED: '40P01',
  SERIALIZATION_FAILURE: '40001',
  /** A named statement of that name exists in the session already (Parse). */
  DUPLICATE_PREPARED_STATEMENT: '42P05',
  /** No named statement of that name in the session (Bind). */
  UNDEFINED_PREPARED_STATEMENT: '26000',
  /** Among others, "cached plan must not change result type" (a table changed under a named statement). */
  FEATURE_NOT_SUPPORTED: '0A000',
} as const;

/** The SQLSTATE of a driver error (TypeORM's QueryFailedError carries the driver's `code`). */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export const isUniqueViolation = (err: unknown): boolean => pgCode(err) === PG.UNIQUE_VIOLATION;
export const isForeignKeyViolation = (err: unknown): boolean =>
  pgCode(err) === PG.FOREIGN_KEY_VIOLATION;
/** Text PostgreSQL cannot store (U+0000): the request's fault, not the server's. */
export const isUnstorableText = (err: unknown): boolean =>
  pgCode(err) === PG.CHARACTER_NOT_IN_REPERTOIRE || pgCode(err) === PG.UNTRANSLATABLE_CHARACTER;

/** The database is down or restarting (connection refused/reset, admin shutdown, cannot connect). */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = pgCode(err) ?? '';
  const message = err instanceof Error ? err.message : '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', '57P01', '57P03', '08006', '08001'].includes(code) ||
    /Connection terminated|timeout exceeded when trying to connect/i.test(message)
  );
}

/**
 * PostgreSQL rolled the transaction back to break a deadlock (or a serialization conflict):
 * nothing of it was kept, and running it again is the documented remedy.
 */
export const isRetryableConflict = (err: unknown): boolean =>
  pgCode(err) === PG.DEADLOCK_DETECTED || pgCode(err) === PG.SERIALIZATION_FAILURE;

/** Attempts of a transaction `retryOnConflict` makes before the conflict is the caller's. */
export const CONFLICT_ATTEMPTS = 4;

/**
 * Runs a whole transaction again when PostgreSQL aborted it as a deadlock victim, after a short
 * random pause (so the two do not meet again in step). `run` must be the entire transaction,
 * with every effect outside the database deferred until after its commit (events, caches).
 */
export async function retryOnConflict<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= CONFLICT_ATTEMPTS || !isRetryableConflict(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 10 * attempt));
    }
  }
}
