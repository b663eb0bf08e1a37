// Re-export for bench/encode.ts, which still imports the pool from its former path; the pool
// itself is onnx/session-pool.ts. Remove once that import names the new file.
export * from "./onnx/session-pool.ts";
