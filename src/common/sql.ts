/** TypeORM answers an UPDATE/DELETE with `[rows, rowCount]`. */
export function updatedRows(result: unknown): number {
  return Array.isArray(result) && typeof result[1] === 'number' ? result[1] : 0;
}

/** TypeORM answers an UPDATE/DELETE … RETURNING with `[rows, rowCount]`: the rows. */
export function returnedRows<T>(result: unknown): T[] {
  return (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : []) as T[];
}
