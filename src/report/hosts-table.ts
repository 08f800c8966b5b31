/** The table of `peftctl hosts`: one row per SSH host, a `!` on each library version that differs from python/requirements.txt. */
import type { HostReport } from "../launch/ssh/hosts-report.ts";
import { renderTable } from "./format.ts";

export function renderHostsTable(reports: readonly HostReport[]): string {
  const rows = reports.map((r) => {
    const version = (library: string) => {
      if (!r.inventory.reachable) return "-";
      if (r.inventory.pythonError) return "no python";
      const found = r.inventory.versions[library] ?? "missing";
      return r.mismatches.some((m) => m.library === library) ? `${found} !` : found;
    };
    return [
      r.inventory.host,
      r.inventory.reachable ? "yes" : "NO",
      r.inventory.reachable ? String(r.inventory.gpus.length) : "-",
      r.inventory.reachable ? `${r.freeSlots}/${r.slots} ${r.slotKind}` : "-",
      version("torch"),
      version("transformers"),
      version("peft"),
      r.inventory.workdir ?? "-",
    ];
  });
  const table = renderTable(["HOST", "REACHABLE", "GPUS", "FREE", "TORCH", "TRANSFORMERS", "PEFT", "WORKDIR"], rows);
  const notes = reports.flatMap((r) => [
    ...(r.inventory.reachable ? [] : [`${r.inventory.host}: ${r.inventory.error}`]),
    ...(r.inventory.pythonError ? [`${r.inventory.host}: its python could not report versions: ${r.inventory.pythonError}`] : []),
    ...r.mismatches.map((m) => `${r.inventory.host}: ${m.library} ${m.host ?? "missing"}, python/requirements.txt pins ${m.required ?? "nothing"}`),
  ]);
  return `${table}\n${notes.map((n) => `${n}\n`).join("")}`;
}
