import { describe, expect, it } from "vitest";
import { SweepSchema } from "../../src/config/schema.ts";
import { expandSweep, seededUniform, sweepSize } from "../../src/config/sweep.ts";

const sweep = (input: unknown) => SweepSchema.parse(input);

describe("grid", () => {
  it("is the cartesian product, last key fastest", () => {
    const { points } = expandSweep(sweep({ method: "grid", parameters: { "method.r": [4, 8, 16], "train.lr": [1e-4, 3e-4] } }));
    expect(points).toEqual([
      { "method.r": 4, "train.lr": 1e-4 },
      { "method.r": 4, "train.lr": 3e-4 },
      { "method.r": 8, "train.lr": 1e-4 },
      { "method.r": 8, "train.lr": 3e-4 },
      { "method.r": 16, "train.lr": 1e-4 },
      { "method.r": 16, "train.lr": 3e-4 },
    ]);
  });

  it("has one point per combination for several keys", () => {
    const { points } = expandSweep(sweep({ parameters: { a: [1, 2, 3], b: ["x", "y"], c: [true, false], d: [[1], [2]] } }));
    expect(points).toHaveLength(24);
    expect(new Set(points.map((p) => JSON.stringify(p))).size).toBe(24);
  });

  it("its size is known without expanding it: the product of the list lengths", () => {
    expect(sweepSize(sweep({ parameters: { a: Array.from({ length: 100 }, (_, i) => i), b: Array.from({ length: 1000 }, (_, i) => i), c: [1, 2] } }))).toBe(200_000);
    expect(sweepSize(sweep({ method: "zip", parameters: { a: [1, 2, 3], b: [4, 5, 6] } }))).toBe(3);
    expect(sweepSize(sweep({ method: "random", n: 2 ** 31, parameters: { a: [1, 2] } }))).toBe(2 ** 31);
  });

  it("no sweep is one empty point", () => {
    expect(expandSweep(undefined).points).toEqual([{}]);
  });
});

describe("zip", () => {
  it("pairs the lists value by value", () => {
    const { points } = expandSweep(sweep({ method: "zip", parameters: { "method.r": [4, 8, 16], "method.alpha": [8, 16, 32] } }));
    expect(points).toEqual([
      { "method.r": 4, "method.alpha": 8 },
      { "method.r": 8, "method.alpha": 16 },
      { "method.r": 16, "method.alpha": 32 },
    ]);
  });

});

describe("random", () => {
  const config = { method: "random", n: 50, seed: 7, parameters: { "train.lr": { min: 1e-5, max: 1e-3, distribution: "log_uniform" }, "method.r": [4, 8, 16, 32], "train.warmup_steps": { min: 0, max: 100, distribution: "int_uniform" } } };

  it("is reproducible from its seed and changes with it", () => {
    const first = expandSweep(sweep(config)).points;
    const again = expandSweep(sweep(config)).points;
    const other = expandSweep(sweep({ ...config, seed: 8 })).points;
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it("keeps draws inside their ranges and integers integral", () => {
    const { points } = expandSweep(sweep({ ...config, n: 2000 }));
    const lrs = points.map((p) => p["train.lr"] as number);
    const warmups = points.map((p) => p["train.warmup_steps"] as number);
    expect(Math.min(...lrs)).toBeGreaterThanOrEqual(1e-5);
    expect(Math.max(...lrs)).toBeLessThanOrEqual(1e-3);
    expect(new Set(points.map((p) => p["method.r"]))).toEqual(new Set([4, 8, 16, 32]));
    expect(warmups.every(Number.isInteger)).toBe(true);
    expect(Math.min(...warmups)).toBe(0);
    expect(Math.max(...warmups)).toBe(100);
  });

  it("log_uniform spreads evenly over decades, not over the linear range", () => {
    const { points } = expandSweep(sweep({ method: "random", n: 4000, seed: 1, parameters: { "train.lr": { min: 1e-5, max: 1e-3, distribution: "log_uniform" } } }));
    const lrs = points.map((p) => p["train.lr"] as number);
    const lowerDecade = lrs.filter((lr) => lr < 1e-4).length / lrs.length;
    // Uniform in log space: half below the geometric midpoint 1e-4. Uniform in linear space would put ~9% there.
    expect(lowerDecade).toBeGreaterThan(0.45);
    expect(lowerDecade).toBeLessThan(0.55);
  });

  it("uniform and int_uniform cover their range evenly, both ends included", () => {
    const { points } = expandSweep(
      sweep({ method: "random", n: 6000, seed: 3, parameters: { x: { min: 0, max: 1 }, k: { min: 1, max: 3, distribution: "int_uniform" } } }),
    );
    const xs = points.map((p) => p.x as number);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.47);
    expect(mean).toBeLessThan(0.53);
    const counts = [1, 2, 3].map((k) => points.filter((p) => p.k === k).length / points.length);
    for (const share of counts) expect(Math.abs(share - 1 / 3)).toBeLessThan(0.03);
  });

  it("draws the same values twice -> one job and a warning", () => {
    const { points, warnings } = expandSweep(sweep({ method: "random", n: 40, seed: 0, parameters: { "method.r": [4, 8] } }));
    expect(points.length).toBeLessThanOrEqual(2);
    expect(new Set(points.map((p) => p["method.r"])).size).toBe(points.length);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.path).toEqual(["sweep", "n"]);
    expect(warnings[0]!.message).toMatch(/drew the same values \d+ time\(s\) out of n=40; planned \d distinct job/);
  });

  it("the generator is uniform on [0, 1)", () => {
    const next = seededUniform(42);
    const buckets = new Array(10).fill(0);
    const draws = Array.from({ length: 20000 }, next);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    for (const u of draws) buckets[Math.floor(u * 10)]++;
    for (const count of buckets) expect(Math.abs(count - 2000)).toBeLessThan(200);
  });
});
