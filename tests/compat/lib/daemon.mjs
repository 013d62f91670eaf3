// Starts the real switchyard binary for the SDK compatibility tests: a temp config on free
// loopback ports, a `file` destination writing NDJSON, helpers to wait for and read that output.
// Standard library only.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));

export const BIN = process.env.SWITCHYARD_BIN || resolve(here, '../../../build/switchyard');
export const WRITE_KEY = 'compat-key';

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export class Daemon {
  /**
   * `writeKeys`: keys of the single source; `extra`: YAML appended to the config; `port`: the
   * ingest port (a free one when omitted).
   */
  constructor({ writeKeys = [WRITE_KEY], extra = '', port = null } = {}) {
    this.writeKeys = writeKeys;
    this.port = port;
    this.extra = extra;
    this.proc = null;
    this.stderr = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 20000) {
    this.tmp = mkdtempSync(join(tmpdir(), 'switchyard-compat-'));
    this.data = join(this.tmp, 'data');
    this.outDir = join(this.data, 'out');
    this.port ??= await freePort();
    this.adminPort = await freePort();
    const keys = this.writeKeys.map((k) => JSON.stringify(k)).join(', ');
    this.configText = `
data_dir: ${this.data}
server:
  listen: 127.0.0.1:${this.port}
admin:
  listen: 127.0.0.1:${this.adminPort}
logging:
  level: warn
sources:
  - name: compat
    write_keys: [${keys}]
    allowed_origins: ["*"]
log:
  durability: fsync
destinations:
  - name: out
    type: file
    path: ${this.outDir}
    batch_max_wait: 10ms
${this.extra}
`;
    this.configPath = join(this.tmp, 'switchyard.yaml');
    writeFileSync(this.configPath, this.configText);

    if (!existsSync(BIN)) throw new Error(`switchyard binary not found at ${BIN} (set SWITCHYARD_BIN)`);
    this.proc = spawn(BIN, ['run', '-c', this.configPath], {
      cwd: this.tmp,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((ok) => this.proc.on('exit', (code, signal) => ok({ code, signal })));
    let exitedEarly = null;
    this.exited.then((r) => { exitedEarly = r; });
    this.proc.stdout.on('data', (d) => { this.stderr += d.toString(); });
    this.proc.stderr.on('data', (d) => { this.stderr += d.toString(); });

    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exitedEarly) {
        throw new Error(`daemon exited early (${JSON.stringify(exitedEarly)}): ${this.stderr}`);
      }
      try {
        const r = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`, {
          signal: AbortSignal.timeout(1000),
        });
        await r.arrayBuffer();
        if (r.status === 200) return this;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    await this.stop();
    throw new Error(`daemon did not become ready within ${timeoutMs} ms: ${this.stderr}`);
  }

  /** SIGTERM, wait (SIGKILL after timeoutMs); resolves to {code, signal}. */
  async stop(timeoutMs = 20000) {
    if (!this.proc) return null;
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
      const r = await this.exited;
      clearTimeout(timer);
      return r;
    }
    return this.exited;
  }

  /** stop() and remove the temp dir. */
  async cleanup() {
    try {
      await this.stop();
    } finally {
      if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
    }
  }

  /** Every event the file destination has written so far, in file order. */
  readEvents(subdir = 'out') {
    const dir = join(this.data, subdir);
    if (!existsSync(dir)) return [];
    const events = [];
    for (const name of readdirSync(dir).sort()) {
      let buf = readFileSync(join(dir, name));
      if (name.endsWith('.gz')) buf = gunzipSync(buf);
      for (const line of buf.toString('utf8').split('\n')) {
        if (line.trim()) events.push(JSON.parse(line));
      }
    }
    return events;
  }

  /** Polls the output until predicate(events) is true; returns the events. */
  async waitForEvents(predicate, { subdir = 'out', timeoutMs = 20000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let events = [];
    while (Date.now() < deadline) {
      try {
        events = this.readEvents(subdir);
      } catch {
        events = []; // a line being written right now
      }
      if (predicate(events)) return events;
      await sleep(50);
    }
    throw new Error(`condition not met within ${timeoutMs} ms; have ${events.length} events in ${subdir}`);
  }

  async metrics() {
    const r = await fetch(`http://127.0.0.1:${this.adminPort}/metrics`);
    return r.text();
  }
}
