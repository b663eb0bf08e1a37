// The child side of child-worker.ts: a helper process (the process host, a process-isolated model
// worker) talks to the server over its IPC channel, and ends with it. Plain JS, so that the
// process host loads it without a TypeScript loader.

/**
 * Sends to the server while the channel is open. A message racing the server's exit has no
 * reader and is dropped: the disconnect that follows ends this process (exitWithParent).
 * @param {unknown} message
 */
export function sendToParent(message) {
  if (process.connected) process.send(message, undefined, {}, () => {});
}

/**
 * When the server's end of the channel closes (it exited, even by SIGKILL), runs `cleanup` and
 * exits, so that no helper outlives the server.
 * @param {() => void} [cleanup]
 */
export function exitWithParent(cleanup = () => {}) {
  process.on("disconnect", () => {
    cleanup();
    process.exit(0);
  });
}
