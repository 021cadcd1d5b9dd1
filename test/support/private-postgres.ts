/**
 * A PostgreSQL server of the test's own, from the machine's server binaries: `initdb` in a
 * temporary directory, a free loopback port, trust authentication. A test that stops PostgreSQL
 * stops this one, never the developer's.
 *
 *   const postgres = await PrivatePostgres.start();
 *   try {
 *     const system = await TestSystem.start({ env: { DATABASE_URL: postgres.url } });
 *     await postgres.stop();    // fast shutdown: clients see their connections closed
 *     await postgres.start();   // same directory and port
 *   } finally {
 *     await postgres.destroy(); // stops it and removes the directory
 *   }
 *
 * PostgreSQL refuses to run as root; as root (containers, CI), the binaries run as the
 * `postgres` user, which owns the directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chown, rm } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePorts } from './free-ports.js';
import { makeOwnedTempDir, removeOrphanedTempDirs } from './owned-temp-dirs.js';

const SETPRIV = '/usr/bin/setpriv';
const POSTGRES_LIB = '/usr/lib/postgresql';
/** Directories are `<tmp>/syncline-pg-<pid of the test process>-<random>`. */
const DIR_PREFIX = 'syncline-pg-';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** The newest installed server's `bin` directory (`PG_BIN_DIR` overrides), or undefined. */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env['PG_BIN_DIR'];
  if (configured) return existsSync(join(configured, 'initdb')) ? configured : undefined;
  if (!existsSync(POSTGRES_LIB)) return undefined;
  const versions = readdirSync(POSTGRES_LIB)
    .filter((name) => existsSync(join(POSTGRES_LIB, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(POSTGRES_LIB, versions[0], 'bin');
}

export class PrivatePostgres {
  private server: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly output: string[] = [];

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
    /** Whom the server runs as, when this process is root. */
    private readonly runAs: { uid: number; gid: number } | undefined,
  ) {}

  /** Creates the cluster and starts the server; resolves once it accepts connections. */
  static async start(bin = postgresBinDir()): Promise<PrivatePostgres> {
    if (!bin) throw new Error('no PostgreSQL server binaries: apt-get install postgresql (or set PG_BIN_DIR)');
    await removeOrphanedTempDirs(DIR_PREFIX);
    const dir = await makeOwnedTempDir(DIR_PREFIX);
    const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
    if (runAs) await chown(dir, runAs.uid, runAs.gid);
    const [port] = await freePorts(1);
    const server = new PrivatePostgres(bin, dir, port as number, runAs);
    try {
      const init = server.run('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8']);
      if (init.status !== 0) throw new Error(`initdb failed:\n${init.stderr}`);
      await server.start();
    } catch (error) {
      await server.destroy();
      throw error;
    }
    return server;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Starts the server (again) on the same directory and port, and waits until it answers. */
  async start(): Promise<void> {
    if (this.server) return;
    const args = [
      ...['-D', join(this.dir, 'data'), '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1'],
      ...['-c', `unix_socket_directories=${this.dir}`, '-c', 'fsync=off'],
    ];
    const child = this.spawn('postgres', args);
    this.server = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      if (this.server === child) this.server = undefined;
    });
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => this.remember(chunk));
    }
    await this.waitUntilReady();
  }

  /** Fast shutdown (what `pg_ctl stop -m fast` does): open connections are closed. */
  async stop(): Promise<void> {
    const child = this.server;
    if (!child) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the server and removes its directory. Safe to call twice. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async waitUntilReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!this.server) throw new Error(`postgres exited while starting:\n${this.output.join('').slice(-2000)}`);
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return;
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(`postgres did not answer in ${READY_TIMEOUT_MS} ms`, { cause: error });
      } finally {
        await client.end().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private run(tool: string, args: string[]) {
    const [file, all] = this.command(tool, args);
    return spawnSync(file, all, { encoding: 'utf8' });
  }

  /** The server dies with this process however it dies (the kernel sends SIGQUIT: immediate shutdown). */
  private spawn(tool: string, args: string[]): ChildProcess {
    const [file, all] = this.command(tool, args, ['--pdeathsig', 'SIGQUIT']);
    return spawn(file, all, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  private command(tool: string, args: string[], setprivOptions: string[] = []): [string, string[]] {
    const binary = join(this.bin, tool);
    const user = this.runAs ? [`--reuid=${this.runAs.uid}`, `--regid=${this.runAs.gid}`, '--init-groups'] : [];
    if (!existsSync(SETPRIV) || (user.length === 0 && setprivOptions.length === 0)) return [binary, args];
    return [SETPRIV, [...user, ...setprivOptions, binary, ...args]];
  }

  private remember(chunk: string): void {
    if (process.env['TEST_SERVICE_LOGS'] === '1') process.stderr.write(`[postgres] ${chunk}`);
    this.output.push(chunk);
    if (this.output.length > 200) this.output.shift();
  }
}

function postgresUser(): { uid: number; gid: number } {
  const lookup = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = lookup('-u');
  const gid = lookup('-g');
  if (!Number.isInteger(uid) || uid <= 0)
    throw new Error('running as root, and there is no postgres user to run PostgreSQL as');
  return { uid, gid };
}
