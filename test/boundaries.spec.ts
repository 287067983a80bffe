import { jest } from '@jest/globals';
import { ESLint } from 'eslint';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The import-boundary rules of `npm run check` (docs/architecture.md § Boundaries): a
 * deliberate violation, linted as if it were in a real file of the tree, must be reported.
 */
const ROOT = process.cwd();
const eslint = new ESLint({ cwd: ROOT });

async function messagesOf(path: string, change: (source: string) => string): Promise<string[]> {
  const source = readFileSync(join(ROOT, path), 'utf8');
  const [result] = await eslint.lintText(change(source), { filePath: join(ROOT, path) });
  return result.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

jest.setTimeout(120_000);

describe('architecture boundaries (eslint)', () => {
  it('the real files pass', async () => {
    expect(await messagesOf('src/rooms/rooms.service.ts', (s) => s)).toEqual([]);
  });

  it('a service importing the chat module fails', async () => {
    const found = await messagesOf(
      'src/rooms/rooms.service.ts',
      (s) =>
        `import { ChatService } from '../chat/chat.service';\nexport type X = ChatService;\n${s}`,
    );
    expect(found.join('\n')).toMatch(/no-restricted-imports: .*Only src\/chat/);
  });

  it('the ground floor importing a feature fails', async () => {
    const found = await messagesOf(
      'src/common/errors.ts',
      (s) =>
        `import type { RoomDto } from '../rooms/dto/room.dto';\nexport type Y = RoomDto;\n${s}`,
    );
    expect(found.join('\n')).toMatch(/no-restricted-imports: .*ground floor/);
  });

  it('SQL in a service fails', async () => {
    const found = await messagesOf('src/rooms/rooms.service.ts', (s) =>
      s.replace(
        'roomIdsOf(userId: string): Promise<string[]> {',
        'roomIdsOf(userId: string): Promise<string[]> {\n    void this.store.db.query("SELECT 1");',
      ),
    );
    expect(found.join('\n')).toMatch(/no-restricted-syntax: SQL belongs in the module's store/);
  });
});
