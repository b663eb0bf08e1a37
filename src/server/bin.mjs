#!/usr/bin/env node
// The `diffusable` command: runs cli.ts through tsx (there is no build step).
import { register } from "tsx/esm/api";

register();
await import("./cli.ts");
