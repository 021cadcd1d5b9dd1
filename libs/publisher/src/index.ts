export { createPublisher, type Published, type Publisher, type PublisherOptions } from './publisher.js';
