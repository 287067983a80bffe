/**
 * PostgreSQL error codes, interpreted in one place (stores translate them into AppErrors).
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const PG_UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === PG_UNIQUE_VIOLATION;
}
