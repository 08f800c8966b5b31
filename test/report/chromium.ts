/**
 * Opens a report page in headless Chromium (Debian's `chromium`, installed by `make install`) through
 * puppeteer-core and reads back what the page shows: console and page errors, every request it made,
 * each chart's data from Chart.js's own instances, the results table's cells, the generations.
 * A missing Chromium is an error, never a skip.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const readerScript = readFileSync(fileURLToPath(new URL("./read-page.js", import.meta.url)), "utf8");

export function chromiumPath(): string {
  const given = process.env.PEFTCTL_CHROMIUM;
  if (given) return given;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const file = path.join(dir, "chromium");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not in this PATH entry
    }
  }
  throw new Error("chromium is not on PATH (and PEFTCTL_CHROMIUM is not set): run 'make install' (it installs Debian's chromium)");
}

export type ChartDataset = { label: string; run?: string; series?: string; data: Array<{ x: number | string; y: number; run?: string }>; drawn: number };
export type PageChart = { id: string; type: string; width: number; height: number; datasets: ChartDataset[] };
export type PageCell = { mean: number | null; std: number | null; n: number; best: boolean };
export type PageTable = { columns: Array<{ key: string; title: string; kind: string }>; rows: Array<{ label: string; runs: string[]; seeds: number[]; cells: Record<string, PageCell> }> };
export type PageGeneration = { run: string; id: string; reference: string; response: string; context: string };

export type PageReading = {
  /** console errors, uncaught page errors and failed requests */
  errors: string[];
  /** every URL the page requested */
  requests: string[];
  charts: PageChart[];
  table: PageTable | null;
  generations: PageGeneration[];
  /** <img> elements in the document (the page has none of its own) */
  images: number;
  /** set by an injected handler if one ever ran */
  injected: unknown;
};

export async function readReportPage(file: string): Promise<PageReading> {
  const browser = await puppeteer.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => errors.push(`page error: ${String(error)}`));
    page.on("requestfailed", (request) => errors.push(`request failed: ${request.url()}`));
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
    const reading = (await page.evaluate(readerScript)) as Omit<PageReading, "errors" | "requests">;
    return { errors, requests, ...reading };
  } finally {
    await browser.close();
  }
}
