/** Clean-up in reverse order of set-up, on success, failure and Ctrl-C alike. */
import { killAll } from './servers';
import { log } from './util';

const undo: { what: string; fn: () => Promise<void> | void }[] = [];

export function onCleanup(what: string, fn: () => Promise<void> | void): void {
  undo.push({ what, fn });
}

export async function cleanup(): Promise<void> {
  while (undo.length) {
    const { what, fn } = undo.pop()!;
    try {
      await Promise.race([fn(), new Promise((r) => setTimeout(r, 20_000))]);
    } catch (err) {
      log(`  cleanup (${what}) failed: ${(err as Error).message}`);
    }
  }
  killAll();
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`\n${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}
