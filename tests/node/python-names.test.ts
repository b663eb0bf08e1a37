// The names the TypeScript side hard-codes must be the Python package's: the model presets a
// run can be started with (launch.ts vs autoencoders.py's configs, denoiser.py DENOISER_CONFIGS)
// and the sampler methods (generate/sampler.ts vs flow.py's sample).

import assert from "node:assert/strict";
import { test } from "node:test";
import { SAMPLER_METHODS } from "../../src/pipeline/generate/sampler.ts";
import { AE_CONFIGS, AE_VARIANTS, DENOISER_CONFIGS } from "../../src/training/runs/launch.ts";
import { runPython } from "./python.ts";

const SCRIPT = `
import json, torch
from diffusable.models.autoencoders import named_configs
from diffusable.models.denoiser import DENOISER_CONFIGS
from diffusable.models import flow
from diffusable.models.scale_equivariance import VARIANT_MODES

def accepts(method):
    try:
        flow.sample(lambda x, t, y: torch.zeros_like(x), torch.zeros(1, 1), torch.zeros(1, dtype=torch.long),
                    steps=1, guidance=1.0, null_class=0, method=method)
        return True
    except ValueError:
        return False

listed = list(flow.SAMPLER_METHODS)

print(json.dumps({
    "ae": list(named_configs()),
    "denoiser": list(DENOISER_CONFIGS),
    "variants": list(VARIANT_MODES),
    "listed": listed,
    "accepted": {m: accepts(m) for m in json.loads(__import__("sys").argv[1])},
}))
`;

test("model presets and sampler methods have the same names in TypeScript and Python", () => {
  const out = JSON.parse(runPython(["-c", SCRIPT, JSON.stringify(SAMPLER_METHODS)])) as {
    ae: string[];
    denoiser: string[];
    variants: string[];
    listed: string[] | null;
    accepted: Record<string, boolean>;
  };
  assert.deepEqual([...AE_CONFIGS].sort(), [...out.ae].sort(), "launch.ts AE_CONFIGS");
  assert.deepEqual(
    [...DENOISER_CONFIGS].sort(),
    [...out.denoiser].sort(),
    "launch.ts DENOISER_CONFIGS",
  );
  assert.deepEqual([...AE_VARIANTS].sort(), [...out.variants].sort(), "launch.ts AE_VARIANTS");
  for (const method of SAMPLER_METHODS) {
    assert.equal(out.accepted[method], true, `flow.sample refuses the method "${method}"`);
  }
  assert.deepEqual(
    [...SAMPLER_METHODS].sort(),
    [...(out.listed ?? [])].sort(),
    "flow.SAMPLER_METHODS",
  );
});
