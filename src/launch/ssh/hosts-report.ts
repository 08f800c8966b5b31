/**
 * What `peftctl hosts` reports per host: its inventory (probed over ssh), the slots jobs take there
 * (GPUs, else CPU slots), how many are free of the runs this runs dir records as running there, and
 * the library versions that differ from python/requirements.txt.
 */
import { allRuns, readStatus } from "../../runs/store.ts";
import { probeHost, requiredVersions, versionMismatches, type HostInventory } from "./inventory.ts";
import type { SshSettings } from "./executor.ts";

export type HostReport = {
  inventory: HostInventory;
  slots: number;
  slotKind: "gpus" | "cpu slots";
  freeSlots: number;
  mismatches: ReturnType<typeof versionMismatches>;
};

export async function reportHosts(settings: SshSettings, runsDir: string): Promise<HostReport[]> {
  const required = requiredVersions();
  const inventories = await Promise.all(settings.hosts.map((host) => probeHost(host, settings.config_file)));
  const running = allRuns(runsDir)
    .map((run) => readStatus(run.dir))
    .filter((status) => status.state === "running");
  return inventories.map((inventory, index) => {
    const onGpus = inventory.gpus.length > 0;
    const slots = onGpus ? inventory.gpus.length : settings.hosts[index]!.cpu_slots;
    const busy = running.filter((status) => status.host === inventory.host).reduce((sum, status) => sum + (onGpus ? status.devices.length : 1), 0);
    return { inventory, slots, slotKind: onGpus ? "gpus" : "cpu slots", freeSlots: Math.max(0, slots - busy), mismatches: versionMismatches(inventory, required) };
  });
}

/**
 * What `hosts check` fails on: a host that does not answer, a Python that cannot report, a version that differs.
 * Jobs in a container (resources.container) bring their own Python: the host's is not checked then.
 */
export function hostProblems(reports: readonly HostReport[], options: { checkPython?: boolean } = {}): string[] {
  const checkPython = options.checkPython ?? true;
  return reports.flatMap((r) => [
    ...(r.inventory.reachable ? [] : [`${r.inventory.host} does not answer`]),
    ...(checkPython && r.inventory.reachable && r.inventory.pythonError ? [`${r.inventory.host}: python cannot report versions`] : []),
    ...(checkPython ? r.mismatches : []).map((m) => `${r.inventory.host}: ${m.library} ${m.host ?? "missing"} != ${m.required ?? "-"}`),
  ]);
}
