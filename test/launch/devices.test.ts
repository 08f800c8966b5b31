import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DevicePool, detectGpus } from "../../src/launch/devices.ts";

/** A stand-in nvidia-smi on PATH that prints what the real one prints for this query. */
function fakeNvidiaSmi(csv: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "nvsmi-"));
  const script = path.join(dir, "nvidia-smi");
  writeFileSync(script, `#!/bin/sh\ncat <<'CSV'\n${csv}\nCSV\n`);
  chmodSync(script, 0o755);
  return dir;
}

const CSV = ["0, GPU-aaa, NVIDIA H100 80GB HBM3, 81559", "1, GPU-bbb, NVIDIA H100 80GB HBM3, 81559", "2, GPU-ccc, NVIDIA H100 80GB HBM3, 81559"].join("\n");

describe("GPU detection", () => {
  it("reads nvidia-smi and honours CUDA_VISIBLE_DEVICES (indices or UUIDs)", async () => {
    const bin = fakeNvidiaSmi(CSV);
    const all = await detectGpus({ PATH: `${bin}:/usr/bin:/bin` });
    expect(all.source).toBe("nvidia-smi");
    expect(all.gpus).toEqual([0, 1, 2].map((i) => ({ id: String(i), name: "NVIDIA H100 80GB HBM3", memoryMiB: 81559 })));
    expect((await detectGpus({ PATH: `${bin}:/usr/bin:/bin`, CUDA_VISIBLE_DEVICES: "2,0" })).gpus.map((g) => g.id)).toEqual(["0", "2"]);
    expect((await detectGpus({ PATH: `${bin}:/usr/bin:/bin`, CUDA_VISIBLE_DEVICES: "GPU-bbb" })).gpus.map((g) => g.id)).toEqual(["1"]);
    expect((await detectGpus({ PATH: `${bin}:/usr/bin:/bin`, CUDA_VISIBLE_DEVICES: "" })).gpus).toEqual([]);
  });

  it("finds no GPU without nvidia-smi, and simulated ones from PEFTCTL_FAKE_GPUS", async () => {
    expect(await detectGpus({ PATH: mkdtempSync(path.join(os.tmpdir(), "empty-")) })).toEqual({ gpus: [], source: "none" });
    expect((await detectGpus({ PEFTCTL_FAKE_GPUS: "0,1,2,3" })).gpus.map((g) => g.id)).toEqual(["0", "1", "2", "3"]);
  });
});

describe("device pool", () => {
  it("hands out distinct GPUs, CPU slots for gpus: 0, and CPU slots for every job without GPUs", () => {
    const pool = new DevicePool(["0", "1", "2"], 1);
    expect(pool.take(2)).toEqual(["0", "1"]);
    expect(pool.take(2)).toBeUndefined();
    expect(pool.take(1)).toEqual(["2"]);
    expect(pool.take(0)).toEqual(["cpu"]);
    expect(pool.take(0)).toBeUndefined();
    pool.give(["1", "0"]);
    expect(pool.take(2)).toEqual(["0", "1"]);
    expect(pool.satisfiable(4)).toBe(false);
    const cpuOnly = new DevicePool([], 2);
    expect(cpuOnly.satisfiable(8)).toBe(true);
    expect([cpuOnly.take(4), cpuOnly.take(1), cpuOnly.take(1)]).toEqual([["cpu"], ["cpu"], undefined]);
  });
});
