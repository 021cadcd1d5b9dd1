import { spawn } from 'node:child_process';

/**
 * Runs one built service with exactly `env` (and PATH) until it exits, for tests of what stops a
 * boot: its exit code and what it wrote to stderr.
 */
export function bootService(
  service: 'gateway' | 'sync-worker' | 'conflict-service',
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`apps/${service}/dist/main.js`], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}
