/**
 * The built-in models' shapes are written twice: python/peftshim/model.py builds them, and
 * src/plan/architectures.ts estimates their memory (they have no config.json to read). This checks
 * that both agree, through the same parser that reads any model's config.json.
 */
import { execa } from "execa";
import { expect, test } from "vitest";
import { BUILTIN_ARCHITECTURES } from "../../src/plan/architectures.ts";
import { parseModelConfig } from "../../src/plan/model-config.ts";
import { projectRoot, shimEnv, shimPython } from "../../src/shim.ts";

const SCRIPT = `
import json
from peftshim.model import BUILTIN_MODELS, BUILTIN_TOKENIZER_VOCAB, builtin_config
print(json.dumps({name: builtin_config(name, BUILTIN_TOKENIZER_VOCAB, attn="sdpa").to_dict() for name in BUILTIN_MODELS}))
`;

test("each built-in model's config (model.py) parses to the shape the estimate uses (architectures.ts)", async () => {
  const { stdout } = await execa(shimPython(), ["-c", SCRIPT], { cwd: projectRoot, env: shimEnv() });
  const configs = JSON.parse(stdout) as Record<string, unknown>;
  expect(Object.keys(configs).sort()).toEqual(Object.keys(BUILTIN_ARCHITECTURES).sort());
  for (const [name, config] of Object.entries(configs)) {
    expect(parseModelConfig(config), name).toEqual({ architecture: BUILTIN_ARCHITECTURES[name] });
  }
}, 60_000);
