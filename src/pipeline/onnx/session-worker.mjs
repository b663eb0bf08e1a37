// Worker-thread entry point. Node's worker threads do not inherit tsx's loader hooks, so this
// plain-JS bootstrap registers tsx inside the worker and then loads the TypeScript worker.
import { register } from "tsx/esm/api";

register();
await import(new URL("./session-worker.ts", import.meta.url).href);
