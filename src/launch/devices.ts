/**
 * The devices jobs are placed on: GPUs from nvidia-smi (restricted to CUDA_VISIBLE_DEVICES when set),
 * and CPU slots. PEFTCTL_FAKE_GPUS="0,1,2,3" lists simulated GPU ids instead of asking nvidia-smi,
 * for placement tests and benchmarks on machines without GPUs (the jobs then run on the CPU).
 */
import { execa } from "execa";

export type Gpu = { id: string; name: string; memoryMiB: number | null };

export type DeviceInventory = { gpus: Gpu[]; source: "nvidia-smi" | "fake" | "none" };

function parseVisible(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function detectGpus(env: NodeJS.ProcessEnv = process.env): Promise<DeviceInventory> {
  const fake = parseVisible(env.PEFTCTL_FAKE_GPUS);
  if (fake) return { gpus: fake.map((id) => ({ id, name: "simulated GPU", memoryMiB: null })), source: "fake" };
  const result = await execa("nvidia-smi", ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"], {
    env,
    extendEnv: false,
    reject: false,
    timeout: 15_000,
  });
  if (result.failed || typeof result.stdout !== "string") return { gpus: [], source: "none" };
  let gpus: Array<Gpu & { uuid: string }> = result.stdout
    .split("\n")
    .map((line) => line.split(",").map((s) => s.trim()))
    .filter((cols) => cols.length >= 3 && cols[0] !== "")
    .map(([index, uuid, name, memory]) => ({ id: index!, uuid: uuid!, name: name!, memoryMiB: memory ? Number(memory) : null }));
  const visible = parseVisible(env.CUDA_VISIBLE_DEVICES);
  if (visible) {
    // CUDA_VISIBLE_DEVICES may hold indices or UUIDs; the ids we hand out stay physical indices.
    gpus = gpus.filter((gpu) => visible.includes(gpu.id) || visible.includes(gpu.uuid));
  }
  return { gpus: gpus.map(({ id, name, memoryMiB }) => ({ id, name, memoryMiB })), source: gpus.length > 0 ? "nvidia-smi" : "none" };
}

/**
 * Free/busy bookkeeping of GPU ids and CPU slots. A job with gpus: N takes N distinct free GPUs;
 * a job with gpus: 0 (or any job when there is no GPU) takes one CPU slot.
 */
export class DevicePool {
  private readonly freeGpus: string[];
  private freeCpuSlots: number;
  readonly gpuCount: number;
  readonly cpuSlots: number;

  constructor(gpuIds: readonly string[], cpuSlots: number) {
    this.freeGpus = [...gpuIds];
    this.gpuCount = gpuIds.length;
    this.cpuSlots = Math.max(1, cpuSlots);
    this.freeCpuSlots = this.cpuSlots;
  }

  /** Whether a job asking for `gpus` runs on GPUs here (false: on a CPU slot). */
  usesGpus(gpus: number): boolean {
    return gpus > 0 && this.gpuCount > 0;
  }

  /** Whether the request can ever be met (more GPUs than the host has cannot). */
  satisfiable(gpus: number): boolean {
    return !this.usesGpus(gpus) || gpus <= this.gpuCount;
  }

  /** Takes devices for a job, or undefined when not enough are free now. ["cpu"] for a CPU slot. */
  take(gpus: number): string[] | undefined {
    if (!this.usesGpus(gpus)) {
      if (this.freeCpuSlots <= 0) return undefined;
      this.freeCpuSlots -= 1;
      return ["cpu"];
    }
    if (this.freeGpus.length < gpus) return undefined;
    return this.freeGpus.splice(0, gpus);
  }

  give(devices: readonly string[]): void {
    if (devices.length === 1 && devices[0] === "cpu") this.freeCpuSlots += 1;
    else this.freeGpus.push(...devices);
    this.freeGpus.sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  }
}
