/**
 * The hub section is hashed into run ids; the model card fields of issue 13 keep every issued id:
 * hub.license lost its apache-2.0 default (a job without it hashes as the earlier jobs that held it),
 * hub.language and hub.base_model count only when set away from what earlier jobs implicitly had.
 */
import { describe, expect, it } from "vitest";
import { HubSchema } from "../../src/config/schema.ts";
import { hashedSection } from "../../src/plan/identity.ts";

/** A hub section as job.json held it before issue 13 (license filled in by the old default). */
const EARLIER = { repo: "org/extes", private: true, layout: "repo-per-run", auto_push: true, license: "apache-2.0", datasets: [] };

describe("the hub section's hash", () => {
  it("is unchanged for a config that sets none of the new fields", () => {
    const now = HubSchema.parse({ repo: "org/extes" });
    expect(now.license).toBeUndefined();
    expect(now.language).toEqual(["en"]);
    expect(hashedSection("hub", now, undefined)).toBe(hashedSection("hub", EARLIER, undefined));
    expect(hashedSection("hub", HubSchema.parse({ repo: "org/extes", license: "apache-2.0" }), undefined)).toBe(hashedSection("hub", EARLIER, undefined));
  });

  it("changes when a new field is set away from its default", () => {
    const earlier = hashedSection("hub", EARLIER, undefined);
    expect(hashedSection("hub", HubSchema.parse({ repo: "org/extes", license: "mit" }), undefined)).not.toBe(earlier);
    expect(hashedSection("hub", HubSchema.parse({ repo: "org/extes", language: ["de"] }), undefined)).not.toBe(earlier);
    expect(hashedSection("hub", HubSchema.parse({ repo: "org/extes", base_model: "huggyllama/llama-7b" }), undefined)).not.toBe(earlier);
  });

  it("hub.base_model is a Hub id, never a path", () => {
    expect(HubSchema.safeParse({ repo: "org/extes", base_model: "/models/llama" }).success).toBe(false);
    expect(HubSchema.safeParse({ repo: "org/extes", base_model: "gpt2" }).success).toBe(true);
  });
});
