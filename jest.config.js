/** Tests run as native ESM; swc strips types and keeps decorator metadata for NestJS. */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2023',
    },
    module: { type: 'es6' },
  },
];

const shared = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: {
    '^@syncline/client/node$': '<rootDir>/libs/client/src/node.ts',
    '^@syncline/client/react$': '<rootDir>/libs/client/src/react/index.ts',
    '^@syncline/([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
};

export default {
  // End-to-end tests start real processes; a hook or test that takes longer than this is stuck.
  testTimeout: 90_000,
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/{libs,apps}/*/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
      testPathIgnorePatterns: ['\\.(pg|nats)\\.spec\\.ts$'],
    },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/{libs,apps}/*/src/**/*.{pg,nats}.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
    },
  ],
};
