import { describe, expect, it } from '@jest/globals';
import { INSTALL_HINT, chooseServiceSource, type MachineProbe } from './test-services.js';

const everything: MachineProbe = { natsServer: true, postgresServer: true, docker: true };

/** Where the tests get the servers they may break, down to the choice (no Docker engine here to run the rest). */
describe('the test services source', () => {
  it('takes the binaries when both are installed, even with Docker', () => {
    expect(chooseServiceSource({}, everything)).toBe('binaries');
  });

  it('takes containers when a binary is missing and Docker answers', () => {
    expect(chooseServiceSource({}, { ...everything, postgresServer: false })).toBe('containers');
    expect(chooseServiceSource({}, { ...everything, natsServer: false })).toBe('containers');
  });

  it('follows SYNCLINE_TEST_SERVICES whatever the machine has', () => {
    const bare: MachineProbe = { natsServer: false, postgresServer: false, docker: false };
    expect(chooseServiceSource({ SYNCLINE_TEST_SERVICES: 'containers' }, everything)).toBe('containers');
    expect(chooseServiceSource({ SYNCLINE_TEST_SERVICES: 'binaries' }, bare)).toBe('binaries');
    expect(() => chooseServiceSource({ SYNCLINE_TEST_SERVICES: 'docker' }, everything)).toThrow(
      'SYNCLINE_TEST_SERVICES="docker": use "binaries" or "containers"',
    );
  });

  it('fails naming what is missing and how to install it, never skipping', () => {
    const noPostgres: MachineProbe = { natsServer: true, postgresServer: false, docker: false };
    expect(() => chooseServiceSource({}, noPostgres)).toThrow(`the tests need the PostgreSQL server: ${INSTALL_HINT}`);
    expect(() => chooseServiceSource({}, { natsServer: false, postgresServer: false, docker: false })).toThrow(
      'nats-server and the PostgreSQL server',
    );
  });
});
