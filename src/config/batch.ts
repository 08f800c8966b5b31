/**
 * The one place where `batch_size = micro_batch_size x gradient_accumulation_steps x devices` is
 * worked out: the config rule (rules.ts), the plan (the job spec's accumulation and micro-batches per
 * step) and the out-of-memory back-off (a smaller micro-batch for the same global batch) all use it.
 */

/** How one optimizer step is made of micro-batches. `devices` counts data-parallel GPUs (1 on a CPU or one GPU). */
export type BatchLayout = {
  micro_batch_size: number;
  /** Micro-batches per device per optimizer step. */
  gradient_accumulation_steps: number;
  /** Micro-batches per optimizer step over all devices: batch_size / micro_batch_size. */
  micro_batches_per_step: number;
  devices: number;
};

export type BatchInput = { batch_size: number; micro_batch_size: number; gpus: number };

/** Data-parallel devices of a job: its GPUs, and at least one. */
export function dataParallelDevices(gpus: number): number {
  return Math.max(1, gpus);
}

/** The layout, or undefined when batch_size is not a whole number of micro-batches on every device. */
export function batchLayout({ batch_size, micro_batch_size, gpus }: BatchInput): BatchLayout | undefined {
  const devices = dataParallelDevices(gpus);
  const perStep = micro_batch_size * devices;
  if (batch_size % perStep !== 0) return undefined;
  return {
    micro_batch_size,
    gradient_accumulation_steps: batch_size / perStep,
    micro_batches_per_step: batch_size / micro_batch_size,
    devices,
  };
}

/**
 * The micro-batch to retry with after running out of memory: the largest divisor of `micro` that is
 * at most half of it, so the global batch stays a whole number of micro-batches (6 -> 3, 5 -> 1);
 * undefined at 1.
 */
export function smallerMicroBatch(micro: number): number | undefined {
  for (let candidate = Math.floor(micro / 2); candidate >= 1; candidate--) {
    if (micro % candidate === 0) return candidate;
  }
  return undefined;
}
