// Access and the command line: user keys never see the server's absolute paths in /v1/runs; the
// last active admin key cannot be revoked (API and CLI); a bad DIFFUSABLE_DEFAULT_MODEL stops
// start-up naming the variable; --help and --version exit 0 on every command; `keys list` has a
// header; relative paths are taken from where `npm run` was typed (INIT_CWD).

import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { REPO_ROOT } from "./python.ts";
import {
  auth,
  MODEL,
  makeVideo,
  openTestApp,
  runCli,
  type TestApp,
  tempDir,
} from "./server-helpers.ts";

const RECORDED = join(REPO_ROOT, "tests/node/fixtures/recorded-runs");
let t: TestApp;
before(async () => {
  t = await openTestApp();
});
after(() => t.close());

const json = (path: string, secret: string, init: RequestInit = {}) =>
  t.app.request(path, { ...init, headers: { ...auth(secret), ...(init.headers ?? {}) } });

test("a user key sees no absolute server path in /v1/runs; an admin key does", async () => {
  for (const name of readdirSync(RECORDED)) {
    const res = await json("/v1/runs/import", t.admin, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: join(RECORDED, name) }),
    });
    assert.equal(res.status, 200, await res.clone().text());
  }
  const list = await (await json("/v1/runs", t.admin)).json();
  assert.ok(JSON.stringify(list).includes(REPO_ROOT), "the admin view names the folders");
  const ids = (list as { runs: { id: string }[] }).runs.map((r) => r.id);
  assert.ok(ids.length > 0);
  for (const path of ["/v1/runs", ...ids.map((id) => `/v1/runs/${id}`)]) {
    const text = await (await json(path, t.user)).text();
    assert.ok(!text.includes(REPO_ROOT), `${path} shows ${REPO_ROOT}`);
    assert.doesNotMatch(text, /"\/(home|root|tmp|work|usr|var|mnt|srv|opt)\//, path);
    assert.doesNotMatch(text, /"pid":\d/, path);
  }
});

test("the last active admin key cannot be revoked over HTTP", async () => {
  const keys = (await (await json("/v1/admin/keys", t.admin)).json()) as {
    keys: { id: string; role: string; revokedAt: string | null }[];
  };
  const admin = keys.keys.find((k) => k.role === "admin" && !k.revokedAt);
  assert.ok(admin);
  const last = await json(`/v1/admin/keys/${admin.id}`, t.admin, { method: "DELETE" });
  assert.equal(last.status, 409);
  assert.equal(((await last.json()) as { error: { code: string } }).error.code, "last_admin");
  const made = await json("/v1/admin/keys", t.admin, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "second", role: "admin" }),
  });
  const second = (await made.json()) as { key: { id: string }; secret: string };
  assert.equal(
    (await json(`/v1/admin/keys/${admin.id}`, t.admin, { method: "DELETE" })).status,
    200,
  );
  const again = await json(`/v1/admin/keys/${second.key.id}`, second.secret, { method: "DELETE" });
  assert.equal(again.status, 409);
});

const dataDir = tempDir("access-cli");
after(() => rmSync(dataDir, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}, script = "src/server/cli.ts") {
  return runCli(dataDir, args, { DIFFUSABLE_RUNS_IMPORT_DIR: "", PORT: "0", ...env }, script);
}

test("the CLI: --help and --version exit 0 on every command", () => {
  for (const args of [
    ["--help"],
    ["--version"],
    ["serve", "--help"],
    ["encode", "--help"],
    ["keys", "--help"],
    ["keys", "create", "--help"],
    ["runs", "--help"],
    ["runs", "start", "--help"],
    ["keys", "--version"],
  ]) {
    const r = cli(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, args.includes("--version") ? /^diffusable \d+\.\d+\.\d+/ : /usage:/);
  }
  for (const script of ["scripts/generate-per-class.ts"]) {
    assert.equal(cli(["--help"], {}, script).code, 0, script);
    assert.equal(cli(["--version"], {}, script).code, 0, script);
  }
});

test("the CLI: keys list has a header; the last admin key is not revoked", () => {
  const made = cli(["keys", "create", "--name", "boss", "--role", "admin"]);
  assert.equal(made.code, 0, made.stderr);
  const id = /key (\S+) \(boss\)/.exec(made.stdout)?.[1] as string;
  const list = cli(["keys", "list"]);
  assert.equal(list.stdout.split("\n")[0], "id\trole\tstatus\tcreated\tname");
  const revoke = cli(["keys", "revoke", id]);
  assert.equal(revoke.code, 1);
  assert.match(revoke.stderr, /last_admin: .*last active admin key/);
});

test("the CLI: a bad DIFFUSABLE_DEFAULT_MODEL stops start-up naming the variable", () => {
  const r = cli(["serve"], { DIFFUSABLE_DEFAULT_MODEL: "nope" });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /DIFFUSABLE_DEFAULT_MODEL="nope" is not a loaded bundle.*tiny-fixture/);
});

test("the CLI: encode resolves relative paths from INIT_CWD and uses the default model", () => {
  const cwd = tempDir("access-cwd");
  try {
    makeVideo(join(cwd, "clip.mp4"), { seconds: 2 });
    const r = cli(["encode", "clip.mp4", "--out", "out"], {
      INIT_CWD: cwd,
      DIFFUSABLE_DEFAULT_MODEL: MODEL,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(cwd, "out", "clip.npy")), r.stdout);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
