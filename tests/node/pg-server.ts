// A PostgreSQL server of the tests' own: a new cluster in a temporary folder, run by a non-root
// user (PostgreSQL refuses root; as root we run it as the `postgres` user Debian's package
// creates, else `nobody`), on a free loopback port with its socket in the same folder, stopped
// and removed by stop(). Debian's postgresql-15 binaries are installed by `npm run setup`.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export interface PostgresServer {
  /** postgres://diffusable@127.0.0.1:<port>/diffusable */
  url: string;
  port: number;
  /** The temporary folder of its cluster and socket. */
  dir: string;
  /** Stops the server (fast shutdown) and removes its folder. */
  stop(): Promise<void>;
}

/** The folder of Debian's newest PostgreSQL binaries, or null when none is installed. */
export function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The user the server runs as: ourselves, or when we are root a system user. */
function asUser(): { uid: number; gid: number } {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid };
  for (const name of ["postgres", "nobody"]) {
    const id = spawnSync("id", ["-u", name], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", name], { encoding: "utf8" });
    if (id.status === 0 && gid.status === 0) {
      return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
    }
  }
  throw new Error("pg-server: running as root and no postgres or nobody user to run PostgreSQL");
}

function run(user: { uid: number; gid: number }, cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", uid: user.uid, gid: user.gid, cwd: "/" });
  if (r.status !== 0) {
    throw new Error(`pg-server: ${cmd} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  }
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("pg-server: PostgreSQL is not installed (run `npm run setup`)");
  const user = asUser();
  const dir = mkdtempSync(join(tmpdir(), "diffusable-pg-"));
  chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  let child: ChildProcess | null = null;
  try {
    run(user, join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "diffusable",
      "--auth=trust",
      "--encoding=UTF8",
      "--no-sync",
    ]);
    const port = await freePort();
    const args = [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "max_connections=100",
    ];
    const proc = spawn(join(bin, "postgres"), args, {
      stdio: ["ignore", "ignore", "pipe"],
      uid: user.uid,
      gid: user.gid,
      cwd: "/",
    });
    child = proc;
    let log = "";
    proc.stderr?.on("data", (d) => {
      log = (log + d.toString()).slice(-4000);
    });
    const ready = Date.now();
    for (;;) {
      const probe = spawnSync(join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port)]);
      if (probe.status === 0) break;
      if (proc.exitCode !== null) throw new Error(`pg-server: postgres exited: ${log.trim()}`);
      if (Date.now() - ready > 30_000) throw new Error(`pg-server: not ready in 30 s: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    run(user, join(bin, "createdb"), [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "diffusable",
      "diffusable",
    ]);
    const exited = new Promise<void>((resolve) => {
      if (proc.exitCode !== null) resolve();
      else proc.once("exit", () => resolve());
    });
    return {
      url: `postgres://diffusable@127.0.0.1:${port}/diffusable`,
      port,
      dir,
      async stop() {
        // SIGINT is PostgreSQL's fast shutdown: it ends the sessions and exits cleanly.
        proc.kill("SIGINT");
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
