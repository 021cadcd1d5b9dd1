import { Injectable } from '@nestjs/common';
import type { Connection } from './connection.js';

/** The open connections of this gateway, by id, for routing outcomes back to authors. */
@Injectable()
export class ConnectionRegistry {
  private readonly connections = new Map<string, Connection>();

  add(connection: Connection): void {
    this.connections.set(connection.id, connection);
  }

  remove(connection: Connection): void {
    this.connections.delete(connection.id);
  }

  get(id: string): Connection | undefined {
    return this.connections.get(id);
  }

  get size(): number {
    return this.connections.size;
  }

  all(): IterableIterator<Connection> {
    return this.connections.values();
  }
}
