/** TypeORM answers an UPDATE/DELETE with `[rows, rowCount]`. */
export function updatedRows(result: unknown): number {
  return Array.isArray(result) && typeof result[1] === 'number' ? result[1] : 0;
}
