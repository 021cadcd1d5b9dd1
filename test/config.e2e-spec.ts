import { describe, expect, it } from '@jest/globals';
import { bootService as boot } from './support/boot-service.js';

/** A bad configuration stops a service at boot, with a message naming every bad variable. */
describe('configuration', () => {
  it('names each bad value and exits with EX_CONFIG', async () => {
    const { code, stderr } = await boot('gateway', {
      GATEWAY_PORT: 'eighty',
      NATS_URL: 'http://x',
      JWT_SECRET: 'short',
    });
    expect(code).toBe(78);
    expect(stderr).toMatch(/GATEWAY_PORT="eighty"/);
    expect(stderr).toMatch(/NATS_URL/);
    expect(stderr).toMatch(/JWT_SECRET="<redacted>": must be at least 32 characters/);
  });

  it('requires a token secret in production', async () => {
    const { code, stderr } = await boot('gateway', { NODE_ENV: 'production' });
    expect(code).toBe(78);
    expect(stderr).toMatch(/JWT_SECRET: is required in production/);
  });

  it.each(['sync-worker', 'conflict-service'] as const)('refuses a bad value in the %s', async (service) => {
    const { code, stderr } = await boot(service, { DATABASE_POOL_SIZE: '1', DEFAULT_CONFLICT_STRATEGY: 'coin-flip' });
    expect(code).toBe(78);
    expect(stderr).toMatch(/DATABASE_POOL_SIZE="1"/);
    if (service === 'conflict-service') expect(stderr).toMatch(/DEFAULT_CONFLICT_STRATEGY="coin-flip"/);
  });
});
