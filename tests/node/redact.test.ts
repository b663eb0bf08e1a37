// What users see of server paths: hidePaths keeps a path's last part only (job and generation
// errors, which quote ffmpeg and onnxruntime about files in the data dir); redactPaths (run rows
// for user keys) keeps paths inside the repository relative and hides the rest.

import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../../src/env.ts";
import { hidePaths, redactPaths } from "../../src/server/redact.ts";

test("hidePaths: every absolute path becomes its last part; API paths and prose stay", () => {
  for (const [message, shown] of [
    [
      "/srv/data/uploads/enc_1/0.mp4 is cut short: stream 0, offset 0x4f3d: partial file",
      "0.mp4 is cut short: stream 0, offset 0x4f3d: partial file",
    ],
    [
      `ffmpeg could not write ${join(REPO_ROOT, "data/outputs/gen_1/.tmp-0.mp4")} (No space)`,
      "ffmpeg could not write .tmp-0.mp4 (No space)",
    ],
    ['cannot open "/a/b/c.onnx": bad', 'cannot open "c.onnx": bad'],
    ["see /v1/encodings/enc_1/items/0/video", "see /v1/encodings/enc_1/items/0/video"],
    ["the answer is 1/2 of / and/or", "the answer is 1/2 of / and/or"],
  ] as const) {
    assert.equal(hidePaths(message), shown);
  }
});

test("redactPaths: inside the repository relative, outside <server>/name", () => {
  assert.deepEqual(
    redactPaths({ folder: join(REPO_ROOT, "runs/ae-1"), ckpt: "/opt/x/ckpt.pt", n: 3 }),
    { folder: "runs/ae-1", ckpt: "<server>/ckpt.pt", n: 3 },
  );
});
