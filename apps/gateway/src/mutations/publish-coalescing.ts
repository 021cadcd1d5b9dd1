/**
 * Runs the publishes requested during one turn of the event loop together, at its end.
 *
 * The NATS client writes what is queued once per microtask checkpoint, and every client frame
 * is its own event: without this, each mutation costs the gateway one write to NATS, and on a
 * busy host those writes (each waking the server's thread) are a large share of its CPU. Gathered
 * here, the mutations of all sockets read in one turn leave in one write. Order is kept, so one
 * connection's mutations reach JetStream in the order they were sent.
 */
export class PublishCoalescer {
  private queued: Array<() => void> = [];

  run<T>(publish: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push(() => {
        publish().then(resolve, reject);
      });
      if (this.queued.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const queued = this.queued;
    this.queued = [];
    for (const start of queued) start();
  }
}
