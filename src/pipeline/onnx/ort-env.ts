// onnxruntime-node (1.30) sends usage telemetry on Linux, and every process that opens a session
// writes /tmp/mat-debug-<pid>.log, which stays behind when it exits. The service turns both off
// unless the operator set ORT_DISABLE_TELEMETRY themselves. onnxruntime reads the variable with
// getenv when it creates its environment, so it is set in the main thread (a worker's
// process.env is its own copy, unseen by native code) before the first session opens.

export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= "1";
}
