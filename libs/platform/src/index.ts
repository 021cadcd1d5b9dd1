export * from './config.js';
export * from './logger.js';
export * from './nats.js';
export * from './telemetry.js';
export * from './shutdown.js';
export * from './instance.js';
export * from './nest.js';
export * from './boot.js';
