export * from './data-source.js';
export * from './entities/entity-record.js';
export * from './entities/change-record.js';
export * from './entities/mutation-record.js';
export * from './entities/conflict-record.js';
export * from './entities/conflict-policy-record.js';
export * from './entities/rejected-message-record.js';
