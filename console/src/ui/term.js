/**
 * An interactive process on the server, driven as `remo shell` drives one
 * (src/client/interactive, mode "concurrent"): `icm` starts it, one `idt`
 * long poll is always outstanding and brings its output as soon as there
 * is some, and input goes out at once in its own `idt` (`wait_ms` 0), one
 * such request at a time so keystrokes keep their order. No WebSocket:
 * every exchange is an ordinary sealed request through any front door.
 *
 * Both requests may carry output, and their answers can cross. Each answer
 * is therefore held until its result arrives and then written at its
 * `offset` (remo's extension, docs/protocol-notes.md): the stream position
 * of its first byte. A server without it gets arrival order.
 *
 * - `new RemoteProcess(conn, {onOutput, onEnd})` — `onOutput(bytes,
 *   channel)` gets every output record in stream order; a returned promise
 *   is awaited before more is written, and a request's loop goes on only
 *   once its answer is written (so a slow screen slows the process, not
 *   memory: remod stops reading a process whose buffer is full).
 *   `onEnd({exit, signal, error})` is called once, when the process has
 *   ended or can no longer be reached.
 * - `start(descriptor)` — `icm` (a `cmd` descriptor plus `pty`).
 * - `send(bytes)` — input; refused (false) beyond `MAX_QUEUED` waiting.
 * - `resize(rows, cols)`, `kill(signal)`, `close()` (HUP, then KILL if it
 *   is still there after `CLOSE_GRACE_MS`).
 * - `running`, `id`, `received` (output bytes so far).
 */

/** The long poll's wait: well inside proxy read timeouts (60 s in nginx and
 * Apache) and remod's own maximum (60 s). Output ends it at once. */
export const POLL_WAIT_MS = 25_000;
/** Most input bytes per request (as the CLI: one data record). */
export const MAX_SEND = 64 * 1024;
/** Most input bytes waiting to be sent (a bigger paste is refused). */
export const MAX_QUEUED = 1 << 20;
/** How long `close()` lets the process end on SIGHUP before SIGKILL. */
export const CLOSE_GRACE_MS = 2_000;

export class RemoteProcess {
  constructor(conn, { onOutput = () => {}, onEnd = () => {} } = {}) {
    this.conn = conn;
    this.onOutput = onOutput;
    this.onEnd = onEnd;
    this.id = null;
    this.running = false;
    this.received = 0;
    this.queue = [];
    this.queued = 0;
    this.sending = false;
    this.ended = false;
    this.abort = new AbortController();
    /** Stream offset of the next byte to write. */
    this.next = 0;
    /** Answers waiting for the output before them: offset → answer. */
    this.pending = new Map();
    /** Answers to write in arrival order (no usable offset). */
    this.ready = [];
    this.pumping = false;
  }

  /** One request; its output is written, in stream order, before it returns. */
  async ask(op, desc, body) {
    const chunks = [];
    const onData = (channel, bytes) => {
      chunks.push([channel, bytes]);
    };
    const r = await this.conn.request(op, desc, { body, onData, signal: this.abort.signal });
    await this.deliver(r, chunks);
    return r;
  }

  /** Queues an answer's chunks at its `offset`; resolves once written. */
  deliver(r, chunks) {
    const bytes = chunks.reduce((n, [, b]) => n + b.length, 0);
    if (bytes === 0 || this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const item = { chunks, bytes, resolve };
      const at = r?.offset;
      // Behind what is written already would be a server's bug: shown, not lost.
      if (Number.isSafeInteger(at) && at >= this.next && !this.pending.has(at)) this.pending.set(at, item);
      else this.ready.push(item);
      this.pump();
    });
  }

  /** Writes what can be written: arrival-order answers, then every answer
   * contiguous from `next`. One writer at a time. */
  async pump() {
    if (this.pumping) return;
    this.pumping = true;
    let item = null;
    try {
      while (!this.ended) {
        item = this.ready.shift();
        if (!item) {
          item = this.pending.get(this.next);
          if (!item) break;
          this.pending.delete(this.next);
          this.next += item.bytes;
        }
        for (const [channel, bytes] of item.chunks) {
          this.received += bytes.length;
          await this.onOutput(bytes, channel);
        }
        item.resolve();
        item = null;
      }
    } catch (e) {
      item?.resolve();
      this.fail(e);
    } finally {
      this.pumping = false;
    }
  }

  async start(descriptor) {
    const r = await this.ask('icm', { ...descriptor, wait_ms: 0 });
    this.id = r.id;
    this.running = true;
    this.update(r);
    if (this.running) this.poll();
    return r;
  }

  /** A result: once it says the process is no longer running, it is over. */
  update(r) {
    if (!r.running) this.end({ exit: r.exit ?? null, signal: r.signal ?? null });
  }

  end(how) {
    if (this.ended) return;
    this.ended = true;
    this.running = false;
    this.queue = [];
    this.queued = 0;
    // Answers still waiting are let go (their loops end: not running).
    for (const item of [...this.ready, ...this.pending.values()]) item.resolve();
    this.ready = [];
    this.pending.clear();
    this.abort.abort();
    this.onEnd(how);
  }

  fail(e) {
    if (this.ended) return;
    const gone = e?.code === 'not_found' ? 'the process is gone (its session ended)' : e?.message ?? String(e);
    this.end({ exit: null, signal: null, error: gone });
  }

  async poll() {
    while (this.running) {
      try {
        const r = await this.ask('idt', { id: this.id, wait_ms: POLL_WAIT_MS });
        this.update(r);
      } catch (e) {
        this.fail(e);
      }
    }
  }

  send(bytes) {
    if (!this.running || bytes.length === 0) return this.running;
    if (this.queued + bytes.length > MAX_QUEUED) return false;
    this.queue.push(bytes);
    this.queued += bytes.length;
    if (!this.sending) this.flush();
    return true;
  }

  /** Sends what is queued, one request at a time, in order. */
  async flush() {
    this.sending = true;
    try {
      while (this.running && this.queue.length) {
        const body = this.take();
        const r = await this.ask('idt', { id: this.id, wait_ms: 0 }, body);
        this.update(r);
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.sending = false;
    }
  }

  /** Up to MAX_SEND queued bytes, as one buffer. */
  take() {
    let n = 0;
    const parts = [];
    while (this.queue.length && n < MAX_SEND) {
      let b = this.queue[0];
      if (n + b.length > MAX_SEND) {
        this.queue[0] = b.subarray(MAX_SEND - n);
        b = b.subarray(0, MAX_SEND - n);
      } else {
        this.queue.shift();
      }
      parts.push(b);
      n += b.length;
    }
    this.queued -= n;
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async resize(rows, cols) {
    if (!this.running) return;
    try {
      await this.conn.request('resize', { id: this.id, rows, cols });
    } catch (e) {
      if (this.running) throw e;
    }
  }

  async kill(signal) {
    if (!this.running) return;
    try {
      await this.conn.request('kill', { id: this.id, signal });
    } catch (e) {
      if (this.running) throw e;
    }
  }

  /** Hangs up as closing a terminal does; KILL if that was not enough. */
  async close() {
    if (!this.running) return;
    await this.kill('HUP').catch(() => {});
    await new Promise((r) => setTimeout(r, CLOSE_GRACE_MS));
    if (this.running) await this.kill('KILL').catch(() => {});
    this.end({ exit: null, signal: null, error: 'closed' });
  }
}
