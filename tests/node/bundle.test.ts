import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { decoderContext } from "../../src/pipeline/autoencoder/decode.ts";
import { listBundles, loadBundle, sha256File } from "../../src/pipeline/bundle.ts";
import { PipelineError } from "../../src/pipeline/pipeline-error.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { fixtureBundle } from "./media.ts";

let dir = "";
let source = "";
let n = 0;

/** A copy of the fixture bundle, its manifest edited by `edit`. */
function copy(edit?: (m: Record<string, unknown>) => void): string {
  const target = join(dir, `b${n++}`);
  cpSync(source, target, { recursive: true });
  if (edit) {
    const path = join(target, "manifest.json");
    const m = JSON.parse(readFileSync(path, "utf8"));
    edit(m);
    writeFileSync(path, JSON.stringify(m));
  }
  return target;
}

const invalid = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof PipelineError, String(err));
  assert.equal(err.code, "invalid_bundle");
  assert.match(err.message, pattern);
  return true;
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "bundle-test-"));
  source = fixtureBundle();
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("loads a valid bundle: manifest, paths and the manifest's sha256", async () => {
  const b = await loadBundle(copy());
  assert.equal(b.manifest.latent_channels, 4);
  assert.equal(b.manifest.frames.default, 9);
  assert.equal(b.manifest.onnx.encoder_stream.caches.length > 0, true);
  assert.match(b.paths.encoderStep, /encoder_step\.onnx$/);
  assert.equal(b.sha256, await sha256File(join(source, "manifest.json")));
});

test("the decoder's context: the manifest's decoder_context_latents, never derived from the config", async () => {
  const { manifest } = await loadBundle(copy());
  // A bundle exported before the field: one decoder call, whatever its config says (the config
  // of the old causal-conv decoder is not re-derived into a receptive field).
  const { decoder_context_latents: _, ...older } = manifest;
  const convConfig = { ...manifest.autoencoder_config, channel_mult: [1, 2], num_res_blocks: 2 };
  assert.equal(decoderContext({ ...older, autoencoder_config: convConfig }), null);
  assert.equal(decoderContext(manifest), manifest.decoder_context_latents);
  const given = await loadBundle(
    copy((m) => {
      m.decoder_context_latents = 6;
      m.architecture = "causal_conv3d";
    }),
  );
  assert.equal(given.manifest.architecture, "causal_conv3d");
  assert.equal(decoderContext(given.manifest), 6);
  await assert.rejects(
    loadBundle(
      copy((m) => {
        m.decoder_context_latents = -1;
      }),
    ),
    invalid(/decoder_context_latents/),
  );
});

describe("manifest errors name the bad field", () => {
  const cases: [string, (m: Record<string, unknown>) => void, RegExp][] = [
    [
      "wrong type",
      (m) => {
        m.latent_channels = "four";
      },
      /latent_channels: .*number/,
    ],
    [
      "missing nested field",
      (m) => {
        delete (m.onnx as Record<string, unknown>).decoder;
      },
      /onnx\.decoder: /,
    ],
    [
      "frame count off the rule",
      (m) => {
        (m.frames as Record<string, unknown>).default = 10;
      },
      /frames\.default: 10 does not follow the rule 1\+4k/,
    ],
    [
      "frames.min off the rule",
      (m) => {
        (m.frames as Record<string, unknown>).min = 2;
      },
      /frames\.min: 2 does not follow the rule 1\+4k/,
    ],
    [
      "frames.min above frames.default",
      (m) => {
        (m.frames as Record<string, unknown>).min = 13;
      },
      /frames\.min: 13 is more than frames\.default 9/,
    ],
    [
      "latent scale of the wrong length",
      (m) => {
        (m.latent as Record<string, unknown>).scale = [1, 2];
      },
      /latent\.scale: has 2 values, latent_channels is 4/,
    ],
    [
      "ONNX file not listed",
      (m) => {
        (m.onnx as Record<string, unknown>).encoder = "other.onnx";
      },
      /onnx\.encoder: "other\.onnx" is not listed in files/,
    ],
    [
      "weights file not listed",
      (m) => {
        delete (m.files as Record<string, unknown>)["encoder.weights"];
      },
      /onnx\.external_data\.0: "encoder\.weights" is not listed in files/,
    ],
    [
      "weights file outside the folder",
      (m) => {
        (m.onnx as Record<string, unknown>).external_data = ["../encoder.weights"];
      },
      /onnx\.external_data\.0: "\.\.\/encoder\.weights" is not a plain file name/,
    ],
    [
      "unknown format",
      (m) => {
        m.format = "diffusable-bundle/2";
      },
      /format: /,
    ],
  ];
  for (const [name, edit, pattern] of cases) {
    test(name, async () => {
      await assert.rejects(loadBundle(copy(edit)), invalid(pattern));
    });
  }

  test("not JSON, or no manifest at all", async () => {
    const broken = copy();
    writeFileSync(join(broken, "manifest.json"), "{ nope");
    await assert.rejects(loadBundle(broken), invalid(/manifest\.json is not JSON/));
    const empty = join(dir, "empty");
    mkdirSync(empty);
    await assert.rejects(loadBundle(empty), invalid(/cannot read manifest\.json/));
  });
});

describe("files are checked against the manifest", () => {
  test("a changed byte is a sha256 mismatch", async () => {
    const b = copy();
    const path = join(b, "encoder.onnx");
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    writeFileSync(path, bytes);
    await assert.rejects(
      loadBundle(b),
      invalid(/encoder\.onnx has sha256 [0-9a-f]{64}, the manifest says/),
    );
  });

  test("the encoder graphs' shared weights file is pinned like a graph", async () => {
    const manifest = JSON.parse(readFileSync(join(source, "manifest.json"), "utf8"));
    assert.deepEqual(manifest.onnx.external_data, ["encoder.weights"]);
    const b = copy();
    const path = join(b, "encoder.weights");
    const bytes = readFileSync(path);
    assert.ok(bytes.length > 0, "the fixture's encoder has weights large enough to share");
    bytes[0] = (bytes[0] as number) ^ 0xff;
    writeFileSync(path, bytes);
    await assert.rejects(
      loadBundle(b),
      invalid(/encoder\.weights has sha256 [0-9a-f]{64}, the manifest says/),
    );
  });

  test("a short or missing file", async () => {
    const b = copy();
    const bytes = readFileSync(join(b, "decoder.onnx"));
    writeFileSync(join(b, "decoder.onnx"), bytes.subarray(0, 100));
    await assert.rejects(
      loadBundle(b),
      invalid(/decoder\.onnx has 100 bytes, the manifest says \d+/),
    );
    rmSync(join(b, "decoder.onnx"));
    await assert.rejects(
      loadBundle(b),
      invalid(/decoder\.onnx is listed in the manifest but cannot be read/),
    );
  });
});

test("listBundles skips and reports invalid bundles; the runtime serves the valid ones", async () => {
  const models = join(dir, "models");
  mkdirSync(models);
  cpSync(source, join(models, "good"), { recursive: true });
  cpSync(
    copy((m) => {
      m.fps = -1;
    }),
    join(models, "bad"),
    { recursive: true },
  );
  writeFileSync(join(models, "README"), "not a bundle");
  const scan = await listBundles(models);
  assert.deepEqual(
    scan.bundles.map((b) => b.name),
    ["good"],
  );
  assert.equal(scan.invalid.length, 1);
  assert.match(scan.invalid[0]?.error.message ?? "", /bad.*fps: /);
  assert.deepEqual(await listBundles(join(dir, "no-such-dir")), { bundles: [], invalid: [] });

  const rt = await ModelRuntime.open({ modelsDir: models, threads: 1 });
  try {
    assert.deepEqual(
      rt.bundles().map((b) => [b.name, b.latentChannels, b.resolution, b.frames.default]),
      [["good", 4, 32, 9]],
    );
    assert.equal(rt.invalidBundles().length, 1);
    assert.throws(
      () => rt.bundleInfo("nope"),
      (err: PipelineError) =>
        err.code === "unknown_model" &&
        err.status === 404 &&
        /known models: good/.test(err.message),
    );
  } finally {
    await rt.close();
  }
});
