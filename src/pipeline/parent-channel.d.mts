/** Sends to the server over the IPC channel while it is open (dropped once it is gone). */
export function sendToParent(message: unknown): void;
/** Runs `cleanup` and exits when the server's end of the channel closes. */
export function exitWithParent(cleanup?: () => void): void;
