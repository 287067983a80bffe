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
