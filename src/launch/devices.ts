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

/** The simulated GPU ids of PEFTCTL_FAKE_GPUS, or undefined when GPUs are real (or none). */
export function simulatedGpuIds(env: NodeJS.ProcessEnv): string[] | undefined {
  return parseVisible(env.PEFTCTL_FAKE_GPUS);
}

export async function detectGpus(env: NodeJS.ProcessEnv = process.env): Promise<DeviceInventory> {
  const fake = simulatedGpuIds(env);
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

/** Devices of one place jobs run on: this host (`host` null) or an SSH host (its name). */
export type DevicePlace = { host: string | null; gpuIds: readonly string[]; cpuSlots: number };

/** The CPU slot's device id: "cpu" here, "<host>:cpu" on an SSH host. */
export function isCpuDevice(device: string | undefined): boolean {
  return device === "cpu" || (device !== undefined && device.endsWith(":cpu"));
}

/** The SSH host of device ids from the pool ("gpu-a:0" -> gpu-a), null for this host's. */
export function hostOfDevices(devices: readonly string[]): string | null {
  const first = devices[0];
  if (first === undefined) return null;
  const colon = first.lastIndexOf(":");
  return colon > 0 ? first.slice(0, colon) : null;
}

/** A device id without its host ("gpu-a:0" -> "0", "gpu-a:cpu" -> "cpu"). */
export function localDeviceId(device: string): string {
  return device.slice(device.lastIndexOf(":") + 1);
}

type PlaceState = { host: string | null; freeGpus: string[]; gpuCount: number; cpuSlots: number; freeCpuSlots: number; lost: boolean };

/**
 * Free/busy bookkeeping of GPU ids and CPU slots, on this host or across SSH hosts. A job with
 * gpus: N takes N distinct free GPUs of one host; a job with gpus: 0 (or any job when no host has a
 * GPU) takes one CPU slot. On SSH hosts the ids carry the host: "gpu-a:0", "gpu-a:cpu".
 * A lost host (markLost) hands out nothing more, and what comes back from it is not reused.
 */
export class DevicePool {
  private readonly places: PlaceState[];

  constructor(gpuIds: readonly string[], cpuSlots: number) {
    this.places = [DevicePool.placeState({ host: null, gpuIds, cpuSlots })];
  }

  /** A pool over several places (the SSH executor's hosts), filled in their order. */
  static across(places: readonly DevicePlace[]): DevicePool {
    const pool = new DevicePool([], 1);
    pool.places.splice(0, pool.places.length, ...places.map(DevicePool.placeState));
    return pool;
  }

  private static placeState(place: DevicePlace): PlaceState {
    const cpuSlots = Math.max(1, place.cpuSlots);
    return { host: place.host, freeGpus: [...place.gpuIds], gpuCount: place.gpuIds.length, cpuSlots, freeCpuSlots: cpuSlots, lost: false };
  }

  private live(): PlaceState[] {
    return this.places.filter((p) => !p.lost);
  }

  /** GPUs of the largest place that is not lost. */
  get gpuCount(): number {
    return Math.max(0, ...this.live().map((p) => p.gpuCount));
  }

  /** CPU slots of all places that are not lost. */
  get cpuSlots(): number {
    return this.live().reduce((sum, p) => sum + p.cpuSlots, 0);
  }

  /** Whether a job asking for `gpus` runs on GPUs here (false: on a CPU slot). */
  usesGpus(gpus: number): boolean {
    return gpus > 0 && this.gpuCount > 0;
  }

  /** Whether the request can ever be met (more GPUs than one host has cannot; nor anything once every host is lost). */
  satisfiable(gpus: number): boolean {
    if (this.live().length === 0) return false;
    return !this.usesGpus(gpus) || gpus <= this.gpuCount;
  }

  /** Takes devices for a job, or undefined when not enough are free now. ["cpu"] for a CPU slot. */
  take(gpus: number): string[] | undefined {
    const onGpus = this.usesGpus(gpus);
    for (const place of this.live()) {
      const named = (id: string) => (place.host === null ? id : `${place.host}:${id}`);
      if (!onGpus) {
        if (place.freeCpuSlots <= 0) continue;
        place.freeCpuSlots -= 1;
        return [named("cpu")];
      }
      if (place.freeGpus.length < gpus) continue;
      return place.freeGpus.splice(0, gpus).map(named);
    }
    return undefined;
  }

  give(devices: readonly string[]): void {
    const host = hostOfDevices(devices);
    const place = this.places.find((p) => p.host === host);
    if (!place || place.lost) return;
    if (devices.length === 1 && isCpuDevice(devices[0])) place.freeCpuSlots += 1;
    else place.freeGpus.push(...devices.map(localDeviceId));
    place.freeGpus.sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  }

  /** The host of these devices stopped answering: nothing more is placed there. */
  markLost(devices: readonly string[]): void {
    const host = hostOfDevices(devices);
    const place = this.places.find((p) => p.host === host);
    if (place && host !== null) place.lost = true;
  }
}
