// Requests that node's HTTP parser refuses before the app sees them (headers over
// --max-http-header-size, malformed HTTP, a request that timed out): answered with the same JSON
// error body as every other error, where node's own answer has an empty body.

import { maxHeaderSize, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody } from "./api-error.ts";

/** The status, code and message node's parser error deserves. */
function describe(code: string | undefined): [number, string, string] {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return [
        431,
        "headers_too_large",
        `the request's headers are larger than ${maxHeaderSize} bytes, the most this server reads`,
      ];
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return [413, "payload_too_large", "the request's chunk extensions are too large"];
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, "request_timeout", "the request took too long to arrive"];
    default:
      return [400, "bad_request", "the request is not valid HTTP/1.1"];
  }
}

/** http.Server's "clientError" listener: a JSON answer when the socket can still take one. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === "ECONNRESET" || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, message] = describe(err.code);
  const body = JSON.stringify(errorBody(code, message));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}
