// The CLI: keys create/list/revoke, bad arguments (non-zero exit, one readable line), and local
// encoding that gives byte-identical latents to the HTTP API for the same input and options.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  auth,
  MODEL,
  makeVideo,
  runCli,
  startTestServer,
  tempDir,
  waitForJob,
} from "./server-helpers.ts";

const dataDir = tempDir("cli");
const work = tempDir("cli-work");
after(() => {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}) {
  return runCli(dataDir, args, env);
}

test("keys create prints the secret once; list shows it; revoke marks it", () => {
  // A user key: the last active admin key may not be revoked (tests/node/access-cli.test.ts).
  const created = cli(["keys", "create", "--name", "ci", "--role", "user"]);
  assert.equal(created.code, 0, created.stderr);
  const id = /key (key_[0-9a-f]+)/.exec(created.stdout)?.[1];
  assert.ok(id, created.stdout);
  assert.match(created.stdout, /^dfs_\S+$/m);
  const listed = cli(["keys", "list"]);
  assert.match(listed.stdout, new RegExp(`${id}\\tuser\\tactive`));
  assert.ok(!/dfs_/.test(listed.stdout), "list never shows secrets");
  assert.equal(cli(["keys", "revoke", id]).code, 0);
  assert.match(cli(["keys", "list"]).stdout, new RegExp(`${id}\\tuser\\trevoked`));
  const missing = cli(["keys", "revoke", "key_nope"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no API key "key_nope"/);
});

test("bad arguments exit non-zero with one readable line", () => {
  const video = makeVideo(join(work, "bad-args.mp4"));
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [["frobnicate"], /unknown command "frobnicate"/],
    [["encode", "--model", MODEL, "--out", work], /at least one video/],
    [["encode", video, "--model", MODEL], /--out DIR is required/],
    [
      ["encode", video, "--model", MODEL, "--mode", "sideways", "--out", work],
      /mode must be one of/,
    ],
    [["encode", join(work, "missing.mp4"), "--model", MODEL, "--out", work], /no such file/],
    [["encode", video, "--model", MODEL, "--out", work, "--bogus"], /bogus/],
    [["keys", "create", "--name", "x", "--role", "root"], /--role must be user or admin/],
    [["keys", "create"], /--name is required/],
    [["keys"], /expected create, list or revoke/],
    [["serve"], /PORT/, { PORT: "eighty" }],
    // A negative value is the value's error, in one line (not parseArgs' three on ambiguity).
    [
      ["encode", video, "--model", MODEL, "--fps", "-3", "--out", work],
      /^diffusable: encode: fps must be greater than 0\.$/,
    ],
    // A bad secret is named, never echoed.
    [
      ["encode", video, "--model", MODEL, "--out", work],
      /^diffusable: invalid configuration: DIFFUSABLE_WEBHOOK_SECRET \(31 characters, not shown\): must be "whsec_" followed by base64/,
      { DIFFUSABLE_WEBHOOK_SECRET: "whsec_not-base64!!topsecretword" },
    ],
  ];
  for (const [args, pattern, env] of cases) {
    const r = cli(args, env);
    assert.notEqual(r.code, 0, `${args.join(" ")} should fail`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line for ${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0] as string, /^diffusable: /);
    assert.match(lines[0] as string, pattern);
    assert.ok(!r.stderr.includes("topsecretword"), r.stderr);
  }
  const unknownModel = cli(["encode", video, "--model", "nope", "--out", work]);
  assert.equal(unknownModel.code, 1);
  assert.match(unknownModel.stderr, /unknown_model/);
  const notVideo = join(work, "text.mp4");
  writeFileSync(notVideo, "not a video\n");
  const r = cli(["encode", notVideo, "--model", MODEL, "--out", join(work, "nv")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /text\.mp4: not_a_video: /);
});

test("encode honours DIFFUSABLE_MAX_SECONDS as the API does: one line, exit 1, nothing written", () => {
  const long = makeVideo(join(work, "long.mp4"), { seconds: 4 });
  const out = join(work, "too-long");
  const r = cli(["encode", long, "--model", MODEL, "--out", out], { DIFFUSABLE_MAX_SECONDS: "2" });
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual(r.stderr.trim().split("\n"), [
    `${long}: too_long: the video lasts 4.0 s, longer than the limit of 2 s (DIFFUSABLE_MAX_SECONDS).`,
  ]);
  assert.deepEqual(readdirSync(out), []);
  // Under the limit, the same file encodes.
  const ok = cli(["encode", long, "--model", MODEL, "--out", out], { DIFFUSABLE_MAX_SECONDS: "5" });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(readdirSync(out).sort(), ["long.json", "long.npy"]);
});

test("HTTP and CLI give byte-identical latents for the same input", async () => {
  const video = makeVideo(join(work, "same.mp4"), { seconds: 3, size: "80x60" });
  const cases = [
    ["whole", "float32"],
    ["clip", "float16"],
  ] as const;
  // The CLI runs first: runCli blocks this process, and a server in it would miss its keep-alive
  // timers meanwhile (its next request could meet a socket closed under it).
  const fromCli = cases.map(([mode, dtype]) => {
    const out = join(work, `out-${mode}`);
    const r = cli([
      "encode",
      video,
      "--model",
      MODEL,
      "--mode",
      mode,
      "--dtype",
      dtype,
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return {
      latents: readFileSync(join(out, "same.npy")),
      meta: JSON.parse(readFileSync(join(out, "same.json"), "utf8")),
    };
  });
  const server = await startTestServer();
  try {
    for (const [i, [mode, dtype]] of cases.entries()) {
      const form = new FormData();
      form.append("model", MODEL);
      form.append("mode", mode);
      form.append("dtype", dtype);
      form.append("files", new Blob([readFileSync(video)]), "same.mp4");
      const res = await fetch(`${server.url}/v1/encodings`, {
        method: "POST",
        headers: auth(server.user),
        body: form,
      });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      const job = (await waitForJob(server.url, `/v1/encodings/${id}`, server.user)) as {
        status: string;
        items: { metadata: unknown }[];
      };
      assert.equal(job.status, "succeeded", JSON.stringify(job));
      const fromHttp = new Uint8Array(
        await (
          await fetch(`${server.url}/v1/encodings/${id}/items/0/latents`, {
            headers: auth(server.user),
          })
        ).arrayBuffer(),
      );
      const cli = fromCli[i] as { latents: Buffer; meta: unknown };
      assert.ok(Buffer.from(fromHttp).equals(cli.latents), `${mode}/${dtype} latents differ`);
      assert.deepEqual(job.items[0]?.metadata, cli.meta);
    }
  } finally {
    await server.close();
  }
});
