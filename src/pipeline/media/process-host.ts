// Child processes (ffmpeg, ffprobe) started from one small child process (process-worker.mjs)
// instead of the event loop. node's spawn() is synchronous up to the child's exec: under
// bench:load, with two busy cores, a single ffprobe start held the HTTP loop for up to 1.5 s (9.5 s
// of a 30 s run in spawn). Moved to a worker thread, the fork still copied the server's page
// tables under its address-space lock (2-41 ms per ffmpeg, during which every page fault of the
// event loop waited): a process of its own forks from its own, small address space.
//
// hostExec is execFile; hostSpawn gives a small ChildProcess-like object: stdout is a Readable
// (flow-controlled: the worker pauses the process when the main thread falls behind), stdin a
// Writable whose writes complete once the worker has handed them to the process, stderr arrives
// as text, and `exit` / `close` come with the code and signal. The host process is shared,
// started on first use, keeps the server alive only while something runs in it, and exits (killing
// what it started) when the server does, even on SIGKILL.

import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { Readable, Writable } from "node:stream";
import { holdChild, sendToChild, spawnChildWorker } from "../child-worker.ts";

const WORKER_URL = new URL("./process-worker.mjs", import.meta.url);

type WorkerEvent =
  | { id: number; ev: "exec"; stdout: string; stderr: string; error: ExecError | null }
  | { id: number; ev: "spawn"; pid: number }
  | { id: number; ev: "error"; message: string }
  | { id: number; ev: "stdout"; chunk: Uint8Array }
  | { id: number; ev: "stdoutEnd" | "stderrClose" | "written" }
  | { id: number; ev: "stderr"; text: string }
  | { id: number; ev: "exit" | "close"; code: number | null; signal: NodeJS.Signals | null };

export interface ExecError {
  message: string;
  /** Killed by the timeout. */
  killed: boolean;
  /** The exit code, or an errno name (ENOENT) when the program could not start. */
  code: number | string | null;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  error: ExecError | null;
}

type Listener = (msg: WorkerEvent) => void;

class Host {
  #worker: ChildProcess | null = null;
  /** The nice value of the process host and so of every child it starts. */
  nice = 0;
  #nextId = 1;
  #listeners = new Map<number, Listener>();

  #start(): ChildProcess {
    if (this.#worker) return this.#worker;
    const worker = spawnChildWorker(WORKER_URL, { nice: this.nice });
    worker.on("message", (msg: WorkerEvent) => this.#listeners.get(msg.id)?.(msg));
    const died = (why: string) => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      const listeners = [...this.#listeners.entries()];
      this.#listeners.clear();
      for (const [id, listener] of listeners) {
        listener({ id, ev: "error", message: `the process host died: ${why}` });
      }
    };
    worker.on("error", (err) => died(err.message));
    worker.on("exit", (code) => died(`exit code ${code}`));
    holdChild(worker, false);
    this.#worker = worker;
    return worker;
  }

  #send(msg: Record<string, unknown>): void {
    if (this.#worker) sendToChild(this.#worker, msg);
  }

  /** Sends a request whose answers go to `listener` until `release` is called. */
  open(msg: Record<string, unknown>, listener: Listener): { id: number; release: () => void } {
    const worker = this.#start();
    const id = this.#nextId++;
    this.#listeners.set(id, listener);
    holdChild(worker, true); // something runs: the server stays up for it, as for a child of its own
    this.#send({ ...msg, id });
    return {
      id,
      release: () => {
        this.#listeners.delete(id);
        if (this.#listeners.size === 0 && this.#worker) holdChild(this.#worker, false);
      },
    };
  }

  post(msg: Record<string, unknown>): void {
    this.#send(msg);
  }
}

const host = new Host();

/**
 * The nice value (0..19) ffmpeg and ffprobe run at from now on: the server lowers them so that
 * they yield the cores to its event loop (thread-priority.mjs). A thread cannot be raised again
 * without privilege, so a running process host is kept as it is and only a later one (after it
 * has gone idle and exited) takes a new value.
 */
export function setProcessPriority(nice: number): void {
  host.nice = nice;
}

/** execFile(command, args) in the process host, killed with SIGKILL after timeoutMs. */
export function hostExec(
  command: string,
  args: readonly string[],
  options: { timeoutMs: number; maxBuffer?: number },
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const { release } = host.open(
      {
        op: "exec",
        command,
        args: [...args],
        options: { timeout: options.timeoutMs, maxBuffer: options.maxBuffer ?? 1 << 20 },
      },
      (msg) => {
        release();
        if (msg.ev === "exec")
          resolve({ stdout: msg.stdout, stderr: msg.stderr, error: msg.error });
        else if (msg.ev === "error") {
          resolve({
            stdout: "",
            stderr: "",
            error: { message: msg.message, killed: false, code: null },
          });
        }
      },
    );
  });
}

export type HostedCommand =
  | { op: "spawn"; command: string; args: readonly string[]; stdin: boolean; stdout: boolean }
  /** fluent-ffmpeg's command (input, options, video filters, no audio) with its output piped. */
  | {
      op: "ffmpeg";
      input: string;
      inputOptions: readonly string[];
      videoFilters: string;
      outputOptions: readonly string[];
    };

/**
 * A process run by the process host. Events: "spawn" (pid), "error" (it never started, or the
 * thread died), "exit" (code, signal), "close" (code, signal; stdout and stderr are done).
 */
export class HostedProcess extends EventEmitter {
  pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stdin: Writable | null;
  /** Everything the process wrote to stderr, as it comes: "data" (string), then "close". */
  readonly stderr = new EventEmitter();
  #id: number;
  #release: () => void;
  #pendingWrite: ((err?: Error | null) => void) | null = null;
  #unacked = 0;
  #done = false;
  #stderrClosed = false;

  constructor(command: HostedCommand) {
    super();
    const wantsStdout = command.op === "ffmpeg" || command.stdout;
    this.stdout = wantsStdout
      ? new Readable({
          highWaterMark: 1 << 20,
          read: () => {
            // The reader wants more: what was pushed so far has been taken (or fits its buffer).
            if (this.#unacked > 0) {
              host.post({ op: "ack", id: this.#id, bytes: this.#unacked });
              this.#unacked = 0;
            }
          },
          destroy: (err, cb) => {
            // Nobody reads any more: the worker drops the rest, so the process is not left
            // blocked on a full pipe.
            if (!this.#done) host.post({ op: "discard", id: this.#id });
            cb(err);
          },
        })
      : null;
    this.stdin =
      command.op === "spawn" && command.stdin
        ? new Writable({
            highWaterMark: 1 << 20,
            write: (chunk: Uint8Array, _enc, cb) => {
              if (this.#done) {
                cb();
                return;
              }
              this.#pendingWrite = cb;
              // A copy: the caller may still use its frame.
              host.post({ op: "stdin", id: this.#id, chunk });
            },
            final: (cb) => {
              host.post({ op: "end", id: this.#id });
              cb();
            },
            destroy: (err, cb) => {
              if (!this.#done) host.post({ op: "destroyStdin", id: this.#id });
              this.#settleWrite();
              cb(err);
            },
          })
        : null;
    const opened = host.open({ ...command }, (msg) => this.#on(msg));
    this.#id = opened.id;
    this.#release = opened.release;
  }

  #closeStderr(): void {
    if (this.#stderrClosed) return;
    this.#stderrClosed = true;
    this.stderr.emit("close");
  }

  #settleWrite(): void {
    const cb = this.#pendingWrite;
    this.#pendingWrite = null;
    cb?.();
  }

  #on(msg: WorkerEvent): void {
    switch (msg.ev) {
      case "spawn":
        this.pid = msg.pid;
        this.emit("spawn", msg.pid);
        break;
      case "stdout":
        this.#unacked += msg.chunk.byteLength;
        this.stdout?.push(msg.chunk);
        break;
      case "stdoutEnd":
        this.stdout?.push(null);
        break;
      case "stderr":
        this.stderr.emit("data", msg.text);
        break;
      case "stderrClose":
        this.#closeStderr();
        break;
      case "written":
        this.#settleWrite();
        break;
      case "exit":
        this.emit("exit", msg.code, msg.signal);
        break;
      case "close":
      case "error":
        this.#done = true;
        this.#release();
        this.#settleWrite();
        this.#closeStderr();
        if (msg.ev === "error") {
          this.stdout?.destroy();
          this.emit("error", new Error(msg.message));
        } else {
          this.stdout?.push(null);
          this.emit("close", msg.code, msg.signal);
        }
        break;
      default:
        break;
    }
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (!this.#done) host.post({ op: "kill", id: this.#id, signal });
  }
}

export function hostSpawn(command: HostedCommand): HostedProcess {
  return new HostedProcess(command);
}
