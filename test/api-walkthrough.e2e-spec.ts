import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApp, type TestApp } from './support/app';
import { ADMIN, ADMIN_ENV } from './support/factories';
import { FakeLlm } from './support/fake-llm';
import { shellBlocks } from './support/markdown';

/**
 * docs/api.md's curl walkthrough, executed: every ```sh block of the page, in order, as one
 * bash script (`set -euo pipefail`) against a live server with an admin from ADMIN_* settings
 * and a model server, so the page cannot drift from the API.
 */
const PAGE = join(process.cwd(), 'docs', 'api.md');

function bash(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-s'], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(script);
  });
}

describe('docs/api.md walkthrough', () => {
  let t: TestApp;
  let llm: FakeLlm;

  beforeAll(async () => {
    llm = await FakeLlm.start();
    llm.respond = () => ({ chunks: ['Sirius', ', by far.'] });
    t = await startApp({
      ...ADMIN_ENV,
      LLM_BASE_URL: llm.url,
      LLM_MODEL: 'fake-model',
      // As the page starts its server: push on, the example gateway's host allowed.
      PUSH_HMAC_SECRET: 'walkthrough-push-secret-0123456789abcdef',
      PUSH_ALLOWED_HOSTS: 'push.example.com',
    });
  });

  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('has shell blocks for every part of the walkthrough', () => {
    const blocks = shellBlocks(readFileSync(PAGE, 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const all = blocks.join('\n');
    for (const route of ['/auth/signup', '/rooms', '/messages', '/personas', '/conversations'])
      expect(all).toContain(route);
  });

  it('runs with bash, every command succeeding, persona replies included', async () => {
    const script = ['set -euo pipefail', ...shellBlocks(readFileSync(PAGE, 'utf8'))].join('\n');
    const run = await bash(script, {
      BASE: t.url,
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
    });
    // On failure, show what the script printed: the failing step is the last one.
    expect({ code: run.code, stderr: run.stderr, stdout: run.stdout.slice(-3000) }).toEqual({
      code: 0,
      stderr: '',
      stdout: expect.any(String) as string,
    });
    // The persona answered in the room and in the conversation (not a "not configured" notice).
    expect(run.stdout.match(/^assistant: Sirius, by far\.$/gm)).toHaveLength(2);
    expect(llm.requests).toHaveLength(2);
    if (process.env.SHOW_WALKTHROUGH) console.log(run.stdout);
  }, 60_000);
});
