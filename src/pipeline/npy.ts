// Re-export for bench/encode.ts, which still imports .npy reading from its former path; the code
// itself is media/npy-file.ts. Remove once that import names the new file.
export * from "./media/npy-file.ts";
