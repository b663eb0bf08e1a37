// The small process that starts ffmpeg and ffprobe for the server (process-host.ts is the
// server's side). Starting a process blocks the thread that asks for it: node's spawn forks and
// then waits until the child has exec'd, which on a busy machine took up to 1.5 s per ffprobe in
// bench:load, every millisecond of it on the HTTP event loop. And a fork copies the forking
// process's page tables while it holds that process's address-space lock: forked from a thread of
// the server, every ffmpeg held the event loop's page faults for 2-41 ms (perf trace), so this
// runs as a child process of its own (its fork copies its own few tables), started at the work
// nice value (child-worker.ts), which everything it starts inherits. Plain JS: it needs no
// TypeScript loader.
//
// Messages in: exec (execFile, whole output back), spawn (a process with piped stdout/stderr and
// optionally stdin), ffmpeg (fluent-ffmpeg's command with its output piped), stdin / end /
// destroyStdin, kill, ack (stdout bytes the main thread has taken: flow control), discard (the
// main thread stopped reading stdout).
// Messages out: {id, ev}: exec, spawn, error, stdout, stdoutEnd, stderr, stderrClose, written,
// exit, close.

import { execFile, spawn } from "node:child_process";
import ffmpeg from "fluent-ffmpeg";
import { exitWithParent, sendToParent as send } from "../parent-channel.mjs";

if (typeof process.send !== "function") {
  throw new Error("process-worker.mjs must run as a child process with an IPC channel");
}

/** stdout bytes sent but not yet taken by the main thread before the process is paused. */
const HIGH_WATER = 4 << 20;

/** id -> the state of one running process */
const procs = new Map();

function relayStdout(id, state, stream) {
  state.stdout = stream;
  state.stdoutOpen = true;
  stream.on("data", (chunk) => {
    if (state.discard) return; // the main thread stopped reading: drain, so the process can end
    // Copied over the IPC channel: only the chunk's own bytes, even when it views a pool.
    state.unacked += chunk.byteLength;
    send({ id, ev: "stdout", chunk });
    if (state.unacked > HIGH_WATER && !state.paused) {
      state.paused = true;
      stream.pause();
    }
  });
  stream.on("end", () => send({ id, ev: "stdoutEnd" }));
  stream.on("error", () => {}); // the process's exit tells what happened
  stream.once("close", () => {
    state.stdoutOpen = false;
    maybeClose(id, state);
  });
}

/**
 * "close" goes last, once the process has closed and its stdout and stderr have been relayed
 * whole: node emits a child's "close" from inside the last stream's own "close", before that
 * stream's other listeners run, and fluent-ffmpeg's output stream may still hold data then.
 */
function maybeClose(id, state) {
  if (state.closed === null || state.closeSent || state.stdoutOpen || state.stderrOpen) return;
  state.closeSent = true;
  procs.delete(id);
  send({ id, ev: "close", ...state.closed });
}

function watch(id, state, proc) {
  state.proc = proc;
  send({ id, ev: "spawn", pid: proc.pid });
  proc.stderr?.on("data", (chunk) => send({ id, ev: "stderr", text: String(chunk) }));
  state.stderrOpen = Boolean(proc.stderr);
  proc.stderr?.once("close", () => {
    state.stderrOpen = false;
    send({ id, ev: "stderrClose" });
    maybeClose(id, state);
  });
  if (!proc.stderr) send({ id, ev: "stderrClose" });
  proc.stdin?.on("error", () => {}); // EPIPE when the process exits early: judged by its exit
  proc.once("exit", (code, signal) => send({ id, ev: "exit", code, signal }));
  proc.once("close", (code, signal) => {
    state.closed = { code, signal };
    maybeClose(id, state);
  });
}

function start(msg) {
  const { id } = msg;
  const state = {
    proc: null,
    stdout: null,
    unacked: 0,
    paused: false,
    discard: false,
    killed: null,
    stdoutOpen: false,
    stderrOpen: false,
    closed: null,
    closeSent: false,
  };
  procs.set(id, state);
  if (msg.op === "spawn") {
    const proc = spawn(msg.command, msg.args, {
      stdio: [msg.stdin ? "pipe" : "ignore", msg.stdout ? "pipe" : "ignore", "pipe"],
    });
    proc.on("error", (err) => {
      if (state.proc === null) {
        procs.delete(id);
        send({ id, ev: "error", message: err.message });
      }
    });
    if (proc.pid === undefined) return; // the error event follows
    watch(id, state, proc);
    if (proc.stdout) relayStdout(id, state, proc.stdout);
    return;
  }
  // op "ffmpeg": fluent-ffmpeg builds the command line and starts ffmpeg; its output is piped.
  const command = ffmpeg(msg.input)
    .inputOptions(msg.inputOptions)
    .videoFilters(msg.videoFilters)
    .noAudio()
    .outputOptions(msg.outputOptions);
  command.on("start", () => {
    const proc = command.ffmpegProc;
    if (!proc) return;
    watch(id, state, proc);
    if (state.killed) proc.kill(state.killed);
  });
  command.on("error", (err) => {
    // Once ffmpeg runs, its exit is judged by the main thread from the process itself; before
    // that (not installed, bad arguments) this is the only word there will be.
    if (state.proc === null) {
      procs.delete(id);
      output.destroy();
      send({ id, ev: "error", message: err.message });
    }
  });
  const output = command.pipe();
  relayStdout(id, state, output);
}

/** execFile children still running (procs holds the spawned ones). */
const execs = new Set();

// Nothing started from here is to outlive the server.
exitWithParent(() => {
  for (const state of procs.values()) state.proc?.kill("SIGKILL");
  for (const child of execs) child.kill("SIGKILL");
});

process.on("message", (msg) => {
  if (msg.op === "exec") {
    const child = execFile(
      msg.command,
      msg.args,
      { ...msg.options, killSignal: "SIGKILL" },
      (err, out, errs) => {
        execs.delete(child);
        send({
          id: msg.id,
          ev: "exec",
          stdout: String(out),
          stderr: String(errs),
          error: err
            ? { message: err.message, killed: err.killed ?? false, code: err.code ?? null }
            : null,
        });
      },
    );
    execs.add(child);
    return;
  }
  if (msg.op === "spawn" || msg.op === "ffmpeg") {
    start(msg);
    return;
  }
  const state = procs.get(msg.id);
  if (state === undefined) {
    if (msg.op === "stdin") send({ id: msg.id, ev: "written" }); // gone: never leave a writer waiting
    return;
  }
  const stdin = state.proc?.stdin;
  switch (msg.op) {
    case "stdin":
      if (!stdin || stdin.destroyed) send({ id: msg.id, ev: "written" });
      else stdin.write(msg.chunk, () => send({ id: msg.id, ev: "written" }));
      break;
    case "end":
      stdin?.end();
      break;
    case "destroyStdin":
      stdin?.destroy();
      break;
    case "kill":
      if (state.proc) state.proc.kill(msg.signal);
      else state.killed = msg.signal; // fluent-ffmpeg has not started it yet
      break;
    case "discard":
      state.discard = true;
      if (state.paused) {
        state.paused = false;
        state.stdout?.resume();
      }
      break;
    case "ack":
      state.unacked -= msg.bytes;
      if (state.paused && state.unacked <= HIGH_WATER / 2) {
        state.paused = false;
        state.stdout?.resume();
      }
      break;
  }
});
